// refimpl's site is built offline: MathJax would load from a CDN, so it is not
// used. The model document and the docstrings write formulas as plain text.
