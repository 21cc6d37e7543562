"""Which ops run on the AI Core of Ascend 910 (CANN's "Atlas training series") and 910B ("Atlas A2 training
series"), at which dtypes: one row per op of msvision's compiled graphs, each with its source in CANN's operator
documentation: the operator's own page where it was read (every int32 op of keyed dropout, Cast, Select, MaskedFill,
IsFinite, Gather, ...), else CANN's operator library, named so; graph-only ops (shape views, which GE compiles to
no kernel) say that. audit.missing_on checks a graph's rows against this table."""
import collections

Row = collections.namedtuple("Row", "chip_910 chip_910b source")

FLOATS = frozenset({"float16", "float32"})
FLOATS_B = FLOATS | {"bfloat16"}  # bfloat16: Atlas A2 (910B) and later only, in every CANN page below
ANY = frozenset({"bool", "int8", "uint8", "int16", "int32", "int64", "float16", "float32", "bfloat16"})
OPS_MATH = "https://gitcode.com/cann/ops-math/blob/master/math/"
HIASCEND = "https://www.hiascend.com/document/detail/zh/"
LIBRARY = "https://www.hiascend.com/document/detail/en/CANNCommunityEdition/latest/API/aolapi (CANN's operator " \
          "library; the op's own page not checked)"
VIEW = "graph-only: a shape view GE compiles to no kernel (no dtype limit)"


def _float(source=LIBRARY, extra=()):
    return Row(FLOATS | set(extra), FLOATS_B | set(extra), source)


SUPPORT = {
    # the keyed random layers' hash (models/layers.py): int32 on both chips; int64 only on the 910B
    "BitwiseXor": Row({"int16", "uint16", "int32"}, {"int16", "uint16", "int32", "int64"},
                      OPS_MATH + "bitwise_xor/README.md (training series: no INT8, UINT8, UINT32, INT64, UINT64)"),
    "BitwiseAnd": Row({"bool", "int8", "uint8", "int16", "uint16", "int32", "int64"},
                      {"bool", "int8", "uint8", "int16", "uint16", "int32", "int64"},
                      OPS_MATH + "bitwise_and/README.md (no UINT32, UINT64 before the 950)"),
    "RightShift": Row({"int8", "int16", "int32", "int64", "uint8", "uint16"},
                      {"int8", "int16", "int32", "int64", "uint8", "uint16"},
                      OPS_MATH + "right_shift/README.md (Atlas training series supported, INT8 to UINT64)"),
    "Mul": Row(FLOATS | {"int32"}, FLOATS_B | {"int16", "int32"},
               "https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/850alpha002/API/ascendcopapi/"
               "atlasascendc_api_07_0037.html (AI Core vector Mul: training series half, int32_t, float)"),
    "Muls": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"},
                HIASCEND + "canncommercial/81RC1/apiref/aolapi/context/aclnnMuls%26aclnnInplaceMuls.md"),
    "Divs": _float(),
    "Cast": Row(ANY - {"bfloat16"}, ANY, HIASCEND + "CANNCommunityEdition/850alpha001/API/aolapi/context/aclnnCast.md "
                                                "(training series: FLOAT16, FLOAT, INT8 ... INT64, BOOL)"),
    "Add": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"},
               HIASCEND + "CANNCommunityEdition/83RC1/API/aolapi/context/aclnnAdds.md (FLOAT, FLOAT16, INT32)"),
    "AddN": _float(),
    "Sub": _float(),
    "Div": _float(),
    "RealDiv": _float(),
    "Neg": _float(),
    "Exp": _float(),
    "Log": _float(),
    "Sqrt": _float(),
    "Square": _float(),
    "Pow": _float(),
    "Maximum": _float(),
    "Minimum": _float(),
    "Sigmoid": _float(),
    "Select": Row(FLOATS | {"bool", "int32"}, FLOATS_B | {"bool", "int32"},
                  HIASCEND + "canncommercial/83RC1/API/aolapi/context/aclnnSWhere.md (condition BOOL; FLOAT, "
                             "FLOAT16, INT32 on the training series)"),
    "MaskedFill": Row(FLOATS | {"bool", "int8", "int32"}, FLOATS_B | {"bool", "int8", "int32"},
                      HIASCEND + "canncommercial/83RC1/API/aolapi/context/aclnnInplaceMaskedFillScalar.md "
                                 "(training series: BOOL, INT8, INT32, INT64, FLOAT, FLOAT16)"),
    "IsFinite": Row(FLOATS | {"bool"}, FLOATS_B | {"bool"},
                    OPS_MATH + "is_finite/docs/aclnnIsFinite.md (FLOAT, FLOAT16 in, BOOL out; training series yes)"),
    "LogicalNot": Row({"bool"}, {"bool"},
                      HIASCEND + "canncommercial/800/apiref/aolapi/context/aclnnLogicalNot&aclnnInplaceLogicalNot.md"),
    "LogicalOr": Row({"bool"}, {"bool"}, LIBRARY),
    "LogicalAnd": Row({"bool"}, {"bool"}, LIBRARY),
    "Equal": Row(FLOATS | {"bool", "int32"}, FLOATS_B | {"bool", "int32"}, LIBRARY),
    "GreaterEqual": Row(FLOATS | {"bool", "int32"}, FLOATS_B | {"bool", "int32"}, LIBRARY),
    "Gather": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"},
                  HIASCEND + "canncommercial/80RC2/apiref/appdevgapi/context/aclnnGatherV2.md (training series)"),
    "GatherD": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"}, LIBRARY),
    "GatherDGradV2": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"}, LIBRARY),
    "Assign": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"}, LIBRARY),
    "AssignAdd": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"}, LIBRARY),
    "ZerosLikeExt": Row(ANY - {"bfloat16"}, ANY, LIBRARY),
    "Tile": _float(),
    "SumExt": _float(),
    "ReduceSum": _float(),
    "ReduceMax": _float(),
    "ReduceMean": _float(),
    "Conv2D": _float(),
    "Conv2DBackpropInput": _float(),
    "Conv2DBackpropFilter": _float(),
    "MatMul": _float(),
    "BiasAdd": _float(),
    "BiasAddGrad": _float(),
    "ReLU": _float(),
    "ReluGrad": _float(),
    "MaxPool": _float(),
    "MaxPoolGrad": _float(),
    "BatchNorm": _float(),
    "BatchNormGrad": _float(),
    "ApplyMomentum": _float(),
    "AssignSub": _float(),
    "Reciprocal": _float(),
    "Expm1": _float(),
    "ClampScalar": _float(),
    "Greater": Row(FLOATS | {"bool", "int32"}, FLOATS_B | {"bool", "int32"}, LIBRARY),
    "LessEqual": Row(FLOATS | {"bool", "int32"}, FLOATS_B | {"bool", "int32"}, LIBRARY),
    "Concat": _float(),
    "SplitWithSize": _float(),
    "Abs": _float(),
    "Sign": _float(),
    "Log1p": _float(),
    "AddScalar": _float(),
    "SubScalar": _float(),
    "OneHot": Row(FLOATS | {"int32"}, FLOATS_B | {"int32"}, LIBRARY + "; int32 indices"),
    "StridedSlice": _float(),
    "StridedSliceGrad": _float(),
    "SGD": _float(),
    "AdamWeightDecay": _float(),
    "TensorMove": Row(FLOATS | {"int32", "bool"}, FLOATS_B | {"int32", "bool"}, LIBRARY + "; a device copy"),
    "Reshape": Row(ANY, ANY, VIEW),
    "Flatten": Row(ANY, ANY, VIEW),
    "ExpandDims": Row(ANY, ANY, VIEW),
    "Squeeze": Row(ANY, ANY, VIEW),
}


def lacking_dtypes(op, dtypes, chip):
    """The dtypes of `op` that `chip`'s AI Core ("910" or "910B") lacks (all of them for an op without a row)."""
    row = SUPPORT.get(op)
    return set(dtypes) if row is None else set(dtypes) - set(row.chip_910 if chip == "910" else row.chip_910b)


def lookup(op, dtypes, chip):
    """Why `op` at `dtypes` does not run on `chip`'s AI Core, or "" when it does."""
    if op not in SUPPORT:
        return f"{op} has no row in msvision/ascend/support.py: add it with its CANN source"
    lacking = sorted(lacking_dtypes(op, dtypes, chip))
    return f"{op} at {', '.join(lacking)}: not on the {chip}'s AI Core ({SUPPORT[op].source})" if lacking else ""
