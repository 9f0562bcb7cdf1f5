"""Adapters for networks that do not fit the plain ``(N, *input_shape)`` array flow.

``equivtest.adapters.hf``: Hugging Face transformers models with variable-length
audio or token inputs (the thesis's experiments 3 to 5).
"""
