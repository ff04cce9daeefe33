"""Data: annotations, features, proposals (file formats), the time grid, labelling and the synthetic benchmark."""
