"""Few-shot object detection as an application: the protocol, ``metadl train/eval`` on detection
configs, and ``metadl detect``."""
