"""Unsupervised object discovery with AKOrN: datasets, contrastive training, masks from synchrony, metrics."""
