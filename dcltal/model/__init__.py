"""The model of the paper (Section 3): disentangle -> aggregate -> heads, computed once per snippet."""
