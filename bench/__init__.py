"""augbench: benchmark harness for medical-image data augmentation."""

__version__ = "0.1.0"
