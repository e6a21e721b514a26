"""The network: compound scaling, EfficientNet layers, exports and inference on them."""
