"""RSNA 2017 second place: hand crop + CLAHE, 49 overlapping patches, one ResNet-50 per sex, decision fusion."""
