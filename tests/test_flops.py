import keras

from efficientnet.model.flops import count_multiply_adds, layer_multiply_adds


def test_hand_computed_multiply_adds():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)  # 8*8*4 outputs x 3*3*3
    x = keras.layers.DepthwiseConv2D(5, strides=2, padding="same", name="dw")(x)  # 4*4*4 outputs x 5*5
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, name="dense")(x)  # 4 x 7
    model = keras.Model(inputs, outputs)
    assert layer_multiply_adds(model.get_layer("conv")) == 8 * 8 * 4 * 27
    assert layer_multiply_adds(model.get_layer("dw")) == 4 * 4 * 4 * 25
    assert layer_multiply_adds(model.get_layer("dense")) == 28
    assert count_multiply_adds(model) == 6912 + 1600 + 28
