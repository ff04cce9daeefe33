"""Pure tensor functions: region pooling (one entry, :func:`dcltal.ops.pooling.pool_regions`, over a
compiled kernel and torch), NMS, segment coding."""
