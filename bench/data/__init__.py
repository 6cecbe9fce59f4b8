"""Dataset handling: scanning class folders, decoding images, validating and splitting.

Submodules (import them directly; this package imports nothing on purpose):

- ``bench.data.loader``: find images in a folder-per-class layout and decode them
  to grey float32 arrays in [0, 1].
- ``bench.data.validate``: find unreadable files, exact and near duplicates and
  label conflicts, and group duplicates so they never straddle splits.
- ``bench.data.splits``: stratified, group-aware train/val/test splits and k folds.
- ``bench.data.sources``: the dataset inputs (folder, MedMNIST .npz, CSV list, phantom) as one
  ``Source`` each; ``bench.data.medmnist`` and ``bench.data.csvinput`` read the last two.
- ``bench.data.cards``: dataset cards (``datasets/*.yaml``): read, validate, find, check a copy.
"""
