"""Pure tensor functions: NMS, segment coding."""
