"""Pure tensor functions: region pooling (sparse-table max, prefix-sum means, pair-list attention),
NMS, segment coding."""
