"""Data sets for the experiments (IDX/torchvision layouts, Fashion-MNIST, embedded digits)."""
