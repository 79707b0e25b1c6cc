"""Larson et al., Radiology 2018: ResNet-50 bone age as monthly classification (see README.md)."""
