package reputation

// NormalizeSlow exposes the general normalization path, which
// NormalizeAddress's fast path must agree with.
var NormalizeSlow = normalizeSlow
