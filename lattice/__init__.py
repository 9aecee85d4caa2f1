"""lattice: annotated Python kernels compiled through a typed IR to machine code.

The public API, re-exported here (no logic lives in this module).
"""
from ._version import __version__
from .codegen.pool import get_num_threads, set_num_threads
from .errors import CompileError
from .frontend.annotations import BOOL as bool_, F32 as f32, F64 as f64, I32 as i32, I64 as i64
from .frontend.annotations import (F16 as f16, I8 as i8, I16 as i16, U8 as u8, U16 as u16,
                                   U32 as u32, U64 as u64)
from .frontend.annotations import C64 as c64, C128 as c128
from .frontend.kernel import Kernel, kernel
from .frontend.ops import (abs, arange, argmax, argmin, astype, clip, concatenate, copy, cos, dot,
                           empty, empty_like, erf, erfc, exp, expm1, floor, full, full_like,
                           hstack, isfinite, isnan, log, log1p, logaddexp, matmul, max, maximum,
                           mean, min, minimum, negative, ones, ones_like, power, prange, sigmoid,
                           sin, softplus, sqrt, stack, sum, tanh, transpose, vstack, where, zeros,
                           zeros_like)
from .frontend.ops import (argpartition, argsort, bincount, histogram, median, partition,
                           percentile, quantile, searchsorted, sort, unique)
from .frontend.ops import (bitwise_and, bitwise_count, bitwise_or, bitwise_xor, invert,
                           left_shift, right_shift)
from .frontend.ops import (argwhere, compress, count_nonzero, extract, flatnonzero, nonzero,
                           take, take_along_axis)
from .frontend.ops import (arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, cbrt,
                           ceil, copysign, cosh, deg2rad, digamma, exp2, fabs, float_power,
                           fmax, fmin, fmod, gamma, heaviside, hypot, isinf, lgamma, log2, log10,
                           logaddexp2, mod, nan_to_num, polygamma, rad2deg, reciprocal, rint,
                           round, sign, signbit, sinh, square, tan, trunc)
from .frontend.ops import (all_ as all, any_ as any, average, cumprod, cumsum, logical_and,  # noqa: A004
                           logical_not, logical_or, logical_xor, nanmax, nanmean, nanmin, nansum,
                           norm, prod, std, var)
from .frontend.ops import (cumulative_prod, cumulative_sum, nancumprod, nancumsum, nanprod, nanstd,
                           nanvar, ptp)
from .frontend.ops import (atleast_1d, atleast_2d, atleast_3d, broadcast_to, diag, diagonal,
                           einsum, expand_dims, eye, flatten, identity, inner, kron, linspace,
                           moveaxis, outer, ravel, repeat, reshape, roll, squeeze, swapaxes,
                           tensordot, tile, trace, tri, tril, triu, vdot)
from .frontend.ops import angle, conj, imag, real
from .frontend.ops import diff, digitize
from .frontend.transforms import (custom_vjp, grad, hessian, hvp, jvp, value_and_grad, vjp)

__all__ = [
    "__version__", "CompileError", "Kernel", "kernel", "f32", "f64", "i32", "i64", "bool_", "abs",
    "arange", "argmax", "argmin", "astype", "clip", "concatenate", "copy", "cos", "dot", "empty",
    "empty_like", "erf", "erfc", "exp", "expm1", "floor", "full", "full_like", "hstack",
    "isfinite", "isnan", "log", "log1p", "logaddexp", "matmul", "max", "maximum", "mean", "min",
    "minimum", "negative", "ones", "ones_like", "power", "prange", "sigmoid", "sin", "softplus",
    "sqrt", "stack", "sum", "tanh", "transpose", "vstack", "where", "zeros", "zeros_like",
    "sort", "argsort", "searchsorted", "bincount", "unique", "histogram", "median", "quantile",
    "percentile", "partition", "argpartition",
    "grad", "value_and_grad", "jvp", "vjp", "hessian", "hvp", "custom_vjp",
    "set_num_threads", "get_num_threads",
    "f16", "i8", "i16", "u8", "u16", "u32", "u64", "c64", "c128",
    "real", "imag", "conj", "angle",
    "bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift",
    "bitwise_count",
    "nonzero", "argwhere", "flatnonzero", "count_nonzero", "extract", "compress", "take",
    "take_along_axis",
    "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "cbrt", "ceil",
    "copysign", "cosh", "deg2rad", "digamma", "exp2", "fabs", "float_power", "fmax", "fmin",
    "fmod", "gamma", "heaviside", "hypot", "isinf", "lgamma", "log2", "log10", "logaddexp2", "mod",
    "nan_to_num", "polygamma", "rad2deg", "reciprocal", "rint", "round", "sign", "signbit",
    "sinh", "square", "tan", "trunc",
    "all", "any", "average", "cumprod", "cumsum", "logical_and", "logical_not", "logical_or",
    "logical_xor", "nanmax", "nanmean", "nanmin", "nansum", "norm", "prod", "std", "var",
    "cumulative_prod", "cumulative_sum", "nancumprod", "nancumsum", "nanprod", "nanstd", "nanvar",
    "ptp",
    "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_to", "diag", "diagonal", "einsum",
    "diff", "digitize", "expand_dims", "eye", "flatten", "identity", "inner", "kron", "linspace", "moveaxis",
    "outer", "ravel", "repeat", "reshape", "roll", "squeeze", "swapaxes", "tensordot", "tile",
    "trace", "tri", "tril", "triu", "vdot",
]
