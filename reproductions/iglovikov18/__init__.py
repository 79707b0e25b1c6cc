"""Iglovikov et al., DLMIA 2018: U-Net mask, key points, registration, VGG-style age networks (see README.md)."""
