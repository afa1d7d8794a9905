"""An independent NumPy implementation of HDR-CNN, written from the spec alone.

It shares nothing with the TensorFlow model but the tensor order (which is the file format):
convolutions are explicit shifted sums, the transposed convolution is a scatter of each input
pixel's 4x4 footprint, and the layer sequence is spelled out by hand.
"""

from __future__ import annotations

import numpy as np

VGG_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float64)
EPS = 1e-5


def conv_same(x, w, b):
    """x (H, W, Cin), w (kh, kw, Cin, Cout): stride 1, zero padding 'SAME'."""
    kh, kw = w.shape[:2]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    h, wd = x.shape[:2]
    out = np.zeros((h, wd, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += xp[i : i + h, j : j + wd] @ w[i, j]
    return out + b


def deconv_same_stride2(x, w, b):
    """Transposed conv, kernel (4, 4, Cout, Cin), stride 2, 'SAME': output 2H x 2W.

    Input pixel (i, j) adds w[a, c] to output (2i + a - 1, 2j + c - 1): the 4x4 footprint
    centred as TensorFlow's SAME padding places it (pad 1 before, 1 after).
    """
    h, wd = x.shape[:2]
    full = np.zeros((2 * h + 2, 2 * wd + 2, w.shape[2]))
    for a in range(4):
        for c in range(4):
            full[a : a + 2 * h : 2, c : c + 2 * wd : 2] += x @ w[a, c].T
    return full[1 : 1 + 2 * h, 1 : 1 + 2 * wd] + b


def maxpool2(x):
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def relu(x):
    return np.maximum(x, 0)


def bn(x, beta, gamma, mean, var):
    return gamma * (x - mean) / np.sqrt(var + EPS) + beta


def to_log(s):
    return np.log((s / 255.0) ** 2 + 1.0 / 255.0)


def forward_log(x, params):
    """x (H, W, 3) in [0, 1] -> y_log (H, W, 3), float64 throughout."""
    p = [np.asarray(t, np.float64) for t in params]
    it = iter(range(80))

    def take(n):
        return [p[next(it)] for _ in range(n)]

    x255 = x.astype(np.float64) * 255.0
    h = x255[..., ::-1] - VGG_MEAN_BGR
    skips = [x255]
    for convs in [2, 2, 3, 3, 3]:
        for _ in range(convs):
            w, b = take(2)
            h = relu(conv_same(h, w, b))
        skips.append(h)
        h = maxpool2(h)
    w, b, beta, gamma, mean, var = take(6)
    h = relu(bn(conv_same(h, w, b), beta, gamma, mean, var))
    # h1: deconv block only
    w, b, beta, gamma, mean, var = take(6)
    h = relu(bn(deconv_same_stride2(h, w, b), beta, gamma, mean, var))
    # h2..h5: fuse with s5..s2, then deconv block
    for skip in (5, 4, 3, 2):
        fw, fb = take(2)
        h = conv_same(np.concatenate([h, to_log(skips[skip])], -1), fw, fb)
        w, b, beta, gamma, mean, var = take(6)
        h = relu(bn(deconv_same_stride2(h, w, b), beta, gamma, mean, var))
    fw, fb = take(2)
    h = conv_same(np.concatenate([h, to_log(skips[1])], -1), fw, fb)
    w, b, beta, gamma, mean, var, fw, fb = take(8)
    h = relu(bn(conv_same(h, w, b), beta, gamma, mean, var))
    return conv_same(np.concatenate([h, to_log(skips[0])], -1), fw, fb)


def forward_final(x, params, gamma=1.0):
    """The authors' predictor: y = f(x^(1/g))^g with the x^2 blend inside f."""
    xg = x.astype(np.float64) ** (1.0 / gamma)
    y_log = forward_log(xg, params)
    alpha = np.clip((xg.max(-1, keepdims=True) - 1 + 0.05) / 0.05, 0, 1)
    y = (1 - alpha) * xg**2 + alpha * (np.exp(y_log) - 1 / 255.0)
    return np.maximum(y, 0) ** gamma
