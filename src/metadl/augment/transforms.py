"""Seeded per-example image transforms on batches: affine, elastic, crop, colour, stroke width, pixel dropout.

Every transform maps a float batch ``(B, C, H, W)`` to a batch of the same shape and draws all of its
randomness from the ``torch.Generator`` it is handed (never the global RNG), so the same generator
state gives the same output bit for bit and a checkpointed generator resumes the stream exactly.
Each example is transformed independently (its own angle, field, crop), with probability ``p``; the
others pass through unchanged. Geometric transforms resample once with :func:`torch.nn.functional.grid_sample`
(bilinear, ``align_corners=False``), all examples of the batch in one call.

Geometry: a transform is written as the map ``M`` that moves a point of the input to the output
(rotation, shear, scale, then translation, in normalised coordinates where the image spans [-1, 1]);
``grid_sample`` needs the inverse (for each output pixel, where to read), so ``theta = M^-1``.
Rotation is counter-clockwise on screen (``torch.rot90``'s direction) for positive angles.

Example:
    >>> x = torch.zeros(2, 1, 8, 8); x[:, :, 2:6, 3] = 1.0              # a vertical stroke
    >>> g = torch.Generator().manual_seed(0)
    >>> y = Compose([Affine(degrees=15, translate=0.1), Elastic(alpha=1.0, sigma=2.0)])(x, g)
    >>> y.shape, bool((y != x).any())
    (torch.Size([2, 1, 8, 8]), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from metadl.augment.checks import AugmentError, check_number, check_pair

PADDING = ("zeros", "border", "reflection")


class Transform(Protocol):
    """A seeded batch transform: ``(B, C, H, W)`` float -> same shape, randomness from ``generator`` only."""

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor: ...


def _uniform(low: float, high: float, n: int, g: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def _chosen(p: float, n: int, g: torch.Generator) -> Tensor:
    """``(n,)`` bool: which examples a transform applied with probability ``p`` touches."""
    return torch.rand(n, generator=g) < p


def _check_images(x: Tensor, name: str) -> None:
    if x.dim() != 4 or not torch.is_floating_point(x):
        raise AugmentError(
            f"{name} transforms float image batches (B, C, H, W); got {x.dtype} of shape {tuple(x.shape)}"
        )


def warp(x: Tensor, theta: Tensor, padding: str = "zeros") -> Tensor:
    """Resample ``x (B, C, H, W)`` with affine maps ``theta (B, 2, 3)`` (output -> input, normalised coords).

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> torch.allclose(warp(x, torch.eye(2, 3).unsqueeze(0)), x, atol=1e-5)   # identity
        True
    """
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def affine_matrices(angle: Tensor, shear: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``theta (B, 2, 3)`` for ``grid_sample`` from per-example degrees, shear degrees, scale and shift ``(B, 2)``.

    The forward map is ``p -> R(angle) Sh(shear) S(scale) p + shift``; the result is its inverse.

    Example:
        >>> theta = affine_matrices(torch.tensor([90.0]), torch.zeros(1), torch.ones(1), torch.zeros(1, 2))
        >>> theta[0, :, :2].round().tolist() == [[0.0, -1.0], [1.0, 0.0]]   # turning by +90 reads from -90
        True
    """
    a = torch.deg2rad(angle.double())
    cos, sin = torch.cos(a), torch.sin(a)
    # Image rows grow downwards, so a counter-clockwise turn on screen is (x, y) -> (x cos + y sin, -x sin + y cos).
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    sh = torch.eye(2, dtype=torch.float64).repeat(len(a), 1, 1)
    sh[:, 0, 1] = torch.tan(torch.deg2rad(shear.double()))
    forward = rot @ sh * scale.double().view(-1, 1, 1)
    inverse = torch.linalg.inv(forward)
    offset = -(inverse @ shift.double().unsqueeze(-1))
    return torch.cat([inverse, offset], -1).float()


class Affine:
    """Random rotation, shear, scale and translation (as in torchvision's ``RandomAffine``).

    Args:
        degrees: rotation angle drawn from ``U[-degrees, degrees]``.
        translate: shift drawn from ``U[-translate, translate]`` as a fraction of the image side, per axis.
        scale: ``(low, high)`` zoom factor range.
        shear: x-shear angle drawn from ``U[-shear, shear]`` degrees.
        p: probability that an example is transformed.
        padding: what is read outside the image: ``zeros``, ``border`` or ``reflection``.
    """

    def __init__(
        self,
        *,
        degrees: float = 0.0,
        translate: float = 0.0,
        scale: Sequence[float] = (1.0, 1.0),
        shear: float = 0.0,
        p: float = 1.0,
        padding: str = "zeros",
    ) -> None:
        self.degrees = check_number("degrees", degrees, 0, 180)
        self.translate = check_number("translate", translate, 0, 1)
        self.scale = check_pair("scale", scale, 0.05, 20)
        self.shear = check_number("shear", shear, 0, 60)
        self.p = check_number("p", p, 0, 1)
        if padding not in PADDING:
            raise AugmentError(f"padding = {padding!r}: choose one of {list(PADDING)}")
        self.padding = padding

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x, "affine")
        b, g = len(x), generator
        angle = _uniform(-self.degrees, self.degrees, b, g)
        shear = _uniform(-self.shear, self.shear, b, g)
        scale = _uniform(*self.scale, b, g)
        shift = 2 * self.translate * (2 * torch.rand(b, 2, generator=g, dtype=torch.float64) - 1)
        keep = ~_chosen(self.p, b, g)
        angle[keep], shear[keep], scale[keep], shift[keep] = 0.0, 0.0, 1.0, 0.0
        return warp(x, affine_matrices(angle, shear, scale, shift), self.padding)


def gaussian_blur(field: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian smoothing of ``(B, C, H, W)`` with zero padding (kernel radius ``3 sigma``)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=field.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = field.shape[1]
    out = F.conv2d(field, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, radius), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(radius, 0), groups=c)


class Elastic:
    """Elastic distortion (Simard et al. 2003): a smooth random displacement field, like a hand's wobble.

    Each example gets a field of uniform ``[-1, 1]`` noise per pixel and axis, smoothed by a Gaussian of
    ``sigma`` pixels and scaled by ``alpha`` pixels. Large ``sigma`` bends whole strokes; small ``sigma``
    roughens them.

    Args:
        alpha: displacement scale in pixels (0: identity).
        sigma: smoothness of the field in pixels.
        p: probability that an example is transformed.
    """

    def __init__(self, *, alpha: float = 2.0, sigma: float = 3.0, p: float = 1.0) -> None:
        self.alpha = check_number("alpha", alpha, 0, 1000)
        self.sigma = check_number("sigma", sigma, 0.1, 100)
        self.p = check_number("p", p, 0, 1)

    def displacement(self, b: int, h: int, w: int, generator: torch.Generator) -> Tensor:
        """``(B, H, W, 2)`` displacement in normalised coordinates (x then y, as ``grid_sample`` reads them)."""
        noise = 2 * torch.rand(b, 2, h, w, generator=generator) - 1
        field = gaussian_blur(noise, self.sigma)
        # A smoothed field of uniform noise has a much smaller spread; rescale so alpha is its max in pixels.
        peak = field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
        field = self.alpha * field / peak
        pixels_to_norm = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
        return (field * pixels_to_norm).permute(0, 2, 3, 1)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x, "elastic")
        b, _, h, w = x.shape
        field = self.displacement(b, h, w, generator)
        field[~_chosen(self.p, b, generator)] = 0.0
        base = F.affine_grid(torch.eye(2, 3).repeat(b, 1, 1), [b, 1, h, w], align_corners=False)
        grid = (base + field).to(x.dtype)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RandomResizedCrop:
    """A random crop of ``U[scale]`` of the area and aspect ratio in ``ratio`` (log-uniform), resized back.

    Args:
        scale: ``(low, high)`` fraction of the image area kept.
        ratio: ``(low, high)`` width / height of the crop.
        p: probability that an example is cropped.
    """

    def __init__(
        self,
        *,
        scale: Sequence[float] = (0.7, 1.0),
        ratio: Sequence[float] = (0.75, 1.3333),
        p: float = 1.0,
    ) -> None:
        self.scale = check_pair("scale", scale, 0.01, 1)
        self.ratio = check_pair("ratio", ratio, 0.1, 10)
        self.p = check_number("p", p, 0, 1)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x, "crop")
        b, g = len(x), generator
        area = _uniform(*self.scale, b, g)
        log_ratio = _uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), b, g)
        w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)  # fraction of the side
        h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
        cx = (1 - w) * (2 * torch.rand(b, generator=g, dtype=torch.float64) - 1)
        cy = (1 - h) * (2 * torch.rand(b, generator=g, dtype=torch.float64) - 1)
        keep = ~_chosen(self.p, b, g)
        w[keep], h[keep], cx[keep], cy[keep] = 1.0, 1.0, 0.0, 0.0
        theta = torch.zeros(b, 2, 3, dtype=torch.float64)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
        return warp(x, theta.float(), "border")


class ColorJitter:
    """Brightness and contrast: ``(x - m) * c + m + b``, clamped to [0, 1] (``m``: the example's mean).

    Args:
        brightness: ``b ~ U[-brightness, brightness]`` added to every pixel.
        contrast: ``c ~ U[1 - contrast, 1 + contrast]``.
        p: probability that an example is changed.
    """

    def __init__(self, *, brightness: float = 0.2, contrast: float = 0.2, p: float = 1.0) -> None:
        self.brightness = check_number("brightness", brightness, 0, 1)
        self.contrast = check_number("contrast", contrast, 0, 1)
        self.p = check_number("p", p, 0, 1)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x, "color")
        b, g = len(x), generator
        shift = _uniform(-self.brightness, self.brightness, b, g).to(x.dtype).view(-1, 1, 1, 1)
        factor = _uniform(1 - self.contrast, 1 + self.contrast, b, g).to(x.dtype).view(-1, 1, 1, 1)
        chosen = _chosen(self.p, b, g).view(-1, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        out = ((x - mean) * factor + mean + shift).clamp(0.0, 1.0)
        return torch.where(chosen, out, x)


class StrokeWidth:
    """Thicker or thinner strokes: grey-level dilation or erosion (a 3x3 max / min filter) of bright ink.

    Each chosen example is dilated or eroded with equal odds; use on bright-on-dark images (Omniglot).

    Args:
        p: probability that an example is changed.
    """

    def __init__(self, *, p: float = 0.5) -> None:
        self.p = check_number("p", p, 0, 1)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x, "stroke_width")
        b = len(x)
        chosen = _chosen(self.p, b, generator).view(-1, 1, 1, 1)
        thicker = (torch.rand(b, generator=generator) < 0.5).view(-1, 1, 1, 1)
        dilated = F.max_pool2d(x, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
        return torch.where(chosen, torch.where(thicker, dilated, eroded), x)


class PixelDropout:
    """Zero a random fraction ``rate`` of the pixels of each chosen example (UMTRA's Omniglot augmentation).

    Args:
        rate: fraction of pixels set to 0.
        p: probability that an example is changed.
    """

    def __init__(self, *, rate: float = 0.1, p: float = 1.0) -> None:
        self.rate = check_number("rate", rate, 0, 1)
        self.p = check_number("p", p, 0, 1)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(x, "pixel_dropout")
        b, _, h, w = x.shape
        drop = torch.rand(b, 1, h, w, generator=generator) < self.rate
        drop &= _chosen(self.p, b, generator).view(-1, 1, 1, 1)
        return x.masked_fill(drop, 0.0)


class Compose:
    """Transforms applied in order, all drawing from the same generator.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> Compose([])(torch.ones(1, 1, 2, 2), g).tolist()
        [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x

    def __len__(self) -> int:
        return len(self.transforms)
