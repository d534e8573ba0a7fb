"""Pure NumPy kernels: `*_forward(...) -> (out, cache)`, `*_backward(dout, cache) -> grads`. No state."""
