"""How the backbone's feature grid becomes one vector: one config value, `model.pooling`.

Every variant first turns the grid [B, h, w, C] into h*w tokens, projects them to `d_model`
(a linear layer) and adds a learned position embedding per grid cell; then

    "gap"        the mean of the tokens (global average pooling: the seed systems' choice)
    "attention"  multi-head cross-attention from one learned query per sex (a single query
                 without the sex input) over the tokens: where the network looks depends on
                 the sex, whose skeleton matures on another schedule. The attention weights
                 over the grid ([B, h, w], mean over heads, each head's weights summing to 1)
                 are not a training output (they have no loss): `attention_map_model` reads
                 them off the trained model, for drawing
    "gru"        a bidirectional GRU over the tokens in raster order (the recurrent variant)

so the three differ in the pooling step only (the projection is linear, and GAP of projected
tokens is a projection of GAP). keras.layers / keras.ops only: every backend.
"""
import keras
from keras import ops

POOLINGS = ("gap", "attention", "gru")


class LearnedPositions(keras.layers.Layer):
    """Adds a learned embedding [N, d] to tokens [B, N, d] (one per grid cell)."""

    def build(self, input_shape):
        self.positions = self.add_weight(shape=tuple(input_shape[1:]), initializer=keras.initializers.RandomNormal(
            stddev=0.02), name="positions")

    def call(self, tokens):
        return tokens + ops.cast(self.positions, tokens.dtype)[None]


class SexQueries(keras.layers.Layer):
    """One learned query vector per sex: male [B, 1] (0/1) -> [B, 1, d]; `per_sex=False`: one query for all."""

    def __init__(self, dim: int, per_sex: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.per_sex = int(dim), bool(per_sex)

    def build(self, input_shape):
        self.queries = self.add_weight(shape=(2 if self.per_sex else 1, self.dim),
                                       initializer=keras.initializers.RandomNormal(stddev=0.02), name="queries")

    def call(self, male):
        index = ops.cast(ops.reshape(male, (-1,)), "int32") if self.per_sex else ops.zeros_like(
            ops.reshape(male, (-1,)), dtype="int32")
        return ops.expand_dims(ops.cast(ops.take(self.queries, index, axis=0), self.compute_dtype), 1)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "per_sex": self.per_sex}


class AttentionMap(keras.layers.Layer):
    """Attention scores [B, heads, 1, h*w] -> the mean over heads as a map [B, h, w], float32."""

    def __init__(self, grid: tuple, **kwargs):
        super().__init__(**kwargs)
        self.grid = tuple(int(g) for g in grid)

    def call(self, scores):
        return ops.reshape(ops.mean(ops.cast(scores, "float32"), axis=(1, 2)), (-1, *self.grid))

    def compute_output_shape(self, input_shape):
        # Stated, not traced: under JAX, Keras 3.15's MultiHeadAttention gives its symbolic scores a
        # key length of 1 (the real scores are right), and a traced reshape of those fails.
        return (input_shape[0], *self.grid)

    def get_config(self):
        return {**super().get_config(), "grid": self.grid}


def pool(grid, male, pooling: str, *, d_model: int = 256, heads: int = 4, gru_units: int = 128,
         per_sex_query: bool = True, return_scores: bool = False):
    """Pools a feature grid [B, h, w, C] (static h, w) into [B, d] by `pooling`.

    Args:
        grid: KerasTensor. The backbone's output.
        male: KerasTensor [B, 1] or None. The sex (0/1), for the per-sex query; None: one query.
        pooling: str. "gap", "attention" or "gru".
        d_model: int. Width of the projected tokens (and of the attention's output).
        heads: int. Attention heads (d_model must divide by it).
        gru_units: int. Units of each direction of the GRU.
        per_sex_query: bool. One query per sex (needs `male`) or one for all.
        return_scores: bool. Also return the attention scores [B, heads, 1, h*w] ("attention" only:
            the outside-mask penalty reads them; no layer is added for them).

    Returns:
        KerasTensor [B, d]: d_model for "gap" and "attention", 2 * gru_units for "gru"; with
        return_scores, (pooled, scores).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    if return_scores and pooling != "attention":
        raise ValueError(f"only attention pooling has attention scores. Received: pooling={pooling!r}, "
                         "return_scores=True")
    if d_model % heads:
        raise ValueError(f"d_model must divide by heads. Received: d_model={d_model}, heads={heads}")
    h, w = grid.shape[1], grid.shape[2]
    if h is None or w is None:
        raise ValueError(f"the feature grid needs a static size (a fixed image size). Received: shape={grid.shape}")
    tokens = keras.layers.Reshape((h * w, grid.shape[-1]), name="tokens")(grid)
    tokens = keras.layers.Dense(d_model, name="token_projection")(tokens)
    tokens = LearnedPositions(name="token_positions")(tokens)
    if pooling == "gap":
        return keras.layers.GlobalAveragePooling1D(name="pool_gap")(tokens)
    if pooling == "gru":
        return keras.layers.Bidirectional(keras.layers.GRU(gru_units), name="pool_gru")(tokens)
    if per_sex_query and male is None:
        raise ValueError("a query per sex needs the sex input (male); pass per_sex_query=False without it")
    tokens = keras.layers.LayerNormalization(name="token_norm")(tokens)
    anchor = male if male is not None else tokens[:, :1, 0]  # any [B, ...] tensor: the query count is per example
    query = SexQueries(d_model, per_sex=per_sex_query and male is not None, name="sex_queries")(anchor)
    pooled, scores = keras.layers.MultiHeadAttention(heads, d_model // heads, name="attention_pool")(
        query, tokens, return_attention_scores=True)
    pooled = keras.layers.Reshape((d_model,), name="pooled")(pooled)
    pooled = keras.layers.LayerNormalization(name="pool_norm")(pooled)
    return (pooled, scores) if return_scores else pooled


def attention_map_model(model) -> keras.Model:
    """A model with the same inputs as `model` (built with pooling "attention") whose output is the
    attention over the backbone's grid, [B, h, w] float32, mean over heads; it shares the weights."""
    try:
        layer = model.get_layer("attention_pool")
    except ValueError:
        raise ValueError(f"{model.name} has no attention pooling (model.pooling is not 'attention')") from None
    grid = model.get_layer("tokens").input.shape[1:3]
    scores = layer.output[1]
    return keras.Model(model.input, AttentionMap(grid, name="attention_map")(scores), name="attention_map_model")
