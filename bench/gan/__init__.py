"""StyleGAN2-ADA, written for augbench from the papers (no code taken from NVlabs' releases).

- :mod:`bench.gan.layers`: equalised-learning-rate dense and convolution layers, the
  modulated/demodulated convolution with noise input, minibatch standard deviation.
- :mod:`bench.gan.networks`: mapping network, skip generator, residual projection discriminator.
- :mod:`bench.gan.ada`: the differentiable augmentation pipeline (Karras et al. 2020b's 'bgc' for
  grey images) and the p controller.
- :mod:`bench.gan.training`: losses, lazy R1, EMA, one training step, checkpoints and the CSV log.

Papers: Karras et al. 2020a, "Analyzing and improving the image quality of StyleGAN"
(CVPR; arXiv 1912.04958) and Karras et al. 2020b, "Training generative adversarial
networks with limited data" (NeurIPS; arXiv 2006.06676).
"""

KARRAS_A = "Karras et al. 2020a (StyleGAN2, arXiv 1912.04958)"
KARRAS_B = "Karras et al. 2020b (StyleGAN2-ADA, arXiv 2006.06676)"
