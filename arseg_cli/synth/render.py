"""Renders a SynthStreet scene: colours, labels, depth and surface ids per pixel, all numpy-vectorised.

Sky first (a panorama looked up by viewing direction), then the ground (ray-plane intersection per
pixel, coloured by the street's plan), then every visible quad with a z-buffer. Quads are drawn
front to back so that a quad completely hidden behind what is already drawn is skipped after one
comparison; the z-buffer makes the result independent of the order, so crossing quads (a tree's two
planes, a car's faces) occlude each other exactly.

Because the camera is level and only yaws (camera.py), a vertical quad's depth along a viewing ray
depends on the image column only: each quad costs a few 1-D operations per column plus a handful of
2-D operations over its bounding box.

Sampling is point sampling (one ray per pixel centre), so colours, labels and depth describe exactly
the same surface point; objects thinner than a pixel come and go between columns, as they would in a
label map drawn at that resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arseg_cli.synth.camera import Intrinsics, Pose
from arseg_cli.synth.classes import Label
from arseg_cli.synth.scene import STATIC, Scene
from arseg_cli.synth.street import GROUND_LABELS, Ground
from arseg_cli.synth.textures import MIP_LEVELS, mip_layout, mip_level

NEAR_M = 0.3
SKY, GROUND = -1, 0  # surface ids; quad i is i + 1
FAR_M = 220.0


def _fraction(x: np.ndarray) -> np.ndarray:
    """x - floor(x): the fractional part, in [0, 1) also for negative x (cheaper than np.mod)."""
    return x - np.floor(x)


@dataclass(frozen=True, slots=True)
class RenderedFrame:
    """One rendered frame.

    rgb:    (H, W, 3) uint8 display colours.
    labels: (H, W) uint8 CamVid class ids.
    depth:  (H, W) float32 camera-frame depth z in metres (along the optical axis); +inf for sky.
    surface: (H, W) int32, what each pixel sees: SKY (-1), GROUND (0) or quad i (i + 1).
    """

    rgb: np.ndarray
    labels: np.ndarray
    depth: np.ndarray
    surface: np.ndarray


@dataclass(frozen=True, slots=True)
class _Visible:
    """The quads that may appear in a frame, nearest first: (n,) arrays of their indices, pixel
    bounds (columns c0..c1-1, rows r0..r1-1), nearest depth (metres), and the camera-frame start
    point (ox, oz) and unit direction (cax, caz) of their bottom edges."""

    index: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    nearest: np.ndarray
    ox: np.ndarray
    oz: np.ndarray
    cax: np.ndarray
    caz: np.ndarray


class Renderer:
    """Draws frames of one scene through one camera; `render(t, pose)` gives frame t seen from `pose`."""

    def __init__(self, scene: Scene, intrinsics: Intrinsics) -> None:
        self.scene = scene
        self.k = intrinsics
        self.dx = intrinsics.ray_dx()
        self.dy = intrinsics.ray_dy()
        # Rows whose ray points below the horizon see the ground; the others see the sky.
        self.horizon_row = int(np.searchsorted(-self.dy, 0.0, side="right"))
        quads = scene.quads
        self._qx0 = np.array([q.x0 for q in quads], np.float64)
        self._qz0 = np.array([q.z0 for q in quads], np.float64)
        self._qax = np.array([q.ax for q in quads], np.float64)
        self._qaz = np.array([q.az for q in quads], np.float64)
        self._qw = np.array([q.width for q in quads], np.float64)
        self._qy0 = np.array([q.y0 for q in quads], np.float64)
        self._qy1 = np.array([q.y1 for q in quads], np.float64)
        self._qmover = np.array([q.mover for q in quads], np.int64)
        self._qfacing = np.array([q.facing for q in quads], np.float64)
        self._qscale_u = np.array([q.texels_per_m_u for q in quads], np.float64)
        self._qscale_v = np.array([q.texels_per_m_v for q in quads], np.float64)
        self._qcols = np.array([q.surface.cols for q in quads], np.int64)
        layouts = [mip_layout(q.surface.rows, q.surface.cols) for q in quads]
        self._qmip_offsets = np.array([o for o, _ in layouts], np.int64).reshape(len(quads), MIP_LEVELS)
        self._qmip_widths = np.array([w for _, w in layouts], np.int64).reshape(len(quads), MIP_LEVELS)
        self._bounds, kinds, self._dashed = scene.street.bands()
        self._kinds = kinds.astype(np.int32)
        sky_cols = scene.sky.image.shape[1]
        self._sky_az_scale = sky_cols / (2 * np.pi)
        self._sky_dir = np.arctan(self.dx)
        self._sky_tan = self.dy[: self.horizon_row, None] / np.sqrt(1.0 + self.dx * self.dx)[None, :]
        rows = scene.sky.image.shape[0]
        self._sky_row = np.minimum((self._sky_tan * ((rows - 1) / scene.sky.tan_max)).astype(np.int64), rows - 1)

    def render(self, t: int, pose: Pose) -> RenderedFrame:
        height, width = self.k.height, self.k.width
        rgb = np.empty((height, width, 3), np.uint8)
        labels = np.empty((height, width), np.uint8)
        depth = np.empty((height, width), np.float32)
        surface = np.empty((height, width), np.int32)
        h = self.horizon_row
        self._draw_sky(rgb[:h], pose)
        labels[:h] = Label.SKY
        depth[:h] = np.inf
        surface[:h] = SKY
        surface[h:] = GROUND
        self._draw_ground(rgb[h:], labels[h:], depth[h:], pose)
        self._draw_quads(t, pose, rgb, labels, depth, surface)
        return RenderedFrame(rgb, labels, depth, surface)

    def surface_movers(self) -> np.ndarray:
        """(quads + 2,) int64: the mover of each surface id s at index s + 1 (sky and ground: static)."""
        return np.concatenate([[STATIC, STATIC], self._qmover])

    def _draw_sky(self, out: np.ndarray, pose: Pose) -> None:
        sky = self.scene.sky.image
        azimuth = pose.yaw + self._sky_dir
        cols = (np.mod(azimuth * self._sky_az_scale, sky.shape[1])).astype(np.int64) % sky.shape[1]
        out[...] = sky[self._sky_row, cols[None, :]]

    def _draw_ground(self, rgb: np.ndarray, labels: np.ndarray, depth: np.ndarray, pose: Pose) -> None:
        street, ground, k = self.scene.street, self.scene.ground, self.k
        dy = self.dy[self.horizon_row :]
        z_row = (pose.y / -dy).astype(np.float32)  # depth of the ground seen by each row
        cos, sin = np.cos(pose.yaw), np.sin(pose.yaw)
        across = (self.dx * cos + sin).astype(np.float32)
        along = (cos - self.dx * sin).astype(np.float32)
        # World coordinates of each ground pixel: camera position + depth x the ray's direction.
        world_x = z_row[:, None] * across[None, :] + np.float32(pose.x)
        world_z = z_row[:, None] * along[None, :] + np.float32(pose.z)
        lateral = world_x - street.center(world_z).astype(np.float32)
        band = np.searchsorted(self._bounds, lateral, side="right")
        kind = self._kinds[band]
        self._paint_details(kind.ravel(), np.flatnonzero(self._dashed[band]), lateral.ravel(), world_z.ravel())
        self._paint_crosswalks(kind, lateral, world_z, z_row, along, pose)
        texels = ground.texels_per_m
        tex = ground.lum
        # The texture's sides are powers of two (asserted in surfaces.py): wrap with a bit mask.
        rows = np.floor(world_z * texels).astype(np.int32) & (tex.height - 1)
        cols = np.floor(world_x * texels).astype(np.int32) & (tex.width - 1)
        # Footprint: across the road z/f metres per pixel, along it z^2/(f * height); their mean (log).
        footprint = texels * z_row ** 1.5 / (k.f * np.sqrt(pose.y))
        lum = tex.sample(rows, cols, mip_level(footprint)[:, None])[..., 0].astype(np.int32)
        rgb[...] = np.take(ground.lut, kind * 256 + lum, axis=0)
        labels[...] = np.take(GROUND_LABELS, kind)
        depth[...] = z_row[:, None]

    def _paint_details(self, kind: np.ndarray, dashed: np.ndarray, lateral: np.ndarray, world_z: np.ndarray) -> None:
        """Gaps in dashed lines and the seams between paving tiles, on flat (n,) views of the ground;
        `dashed` are the flat indices of pixels in dashed bands."""
        street = self.scene.street
        if dashed.size:
            phase = _fraction(world_z[dashed] / street.dash_period)
            kind[dashed[phase >= street.dash_length / street.dash_period]] = Ground.ROAD
        paved = np.flatnonzero(kind == Ground.SIDEWALK)
        if paved.size:
            seam = 0.03 / street.tile_size
            tiles = (_fraction(lateral[paved] / street.tile_size) < seam) | (
                _fraction(world_z[paved] / street.tile_size) < seam)
            kind[paved[tiles]] = Ground.SIDEWALK_SEAM

    def _paint_crosswalks(
        self, kind: np.ndarray, lateral: np.ndarray, world_z: np.ndarray, z_row: np.ndarray, along: np.ndarray,
        pose: Pose,
    ) -> None:
        """Zebra stripes, only on the rows whose ground can reach each crossing's Z range."""
        street = self.scene.street
        stripes_half = street.road_half_width - 0.5
        row_lo = pose.z + z_row * along.min()
        row_hi = pose.z + z_row * along.max()
        for z0 in street.crosswalks_z:
            rows = np.flatnonzero((row_hi >= z0) & (row_lo < z0 + street.crosswalk_depth))
            if rows.size == 0:
                continue
            sub = slice(rows[0], rows[-1] + 1)
            wz, lat = world_z[sub], lateral[sub]
            zebra = (wz >= z0) & (wz < z0 + street.crosswalk_depth) & (np.abs(lat) < stripes_half)
            zebra &= _fraction(lat) < 0.5
            kind[sub][zebra] = Ground.MARK_WHITE

    def _visible_quads(self, t: int, pose: Pose) -> _Visible:
        """The quads that can appear in frame t seen from `pose`, nearest first."""
        k = self.k
        shift = self.scene.mover_xz[self._qmover, t]
        ox, oz = pose.to_camera(self._qx0 + shift[:, 0], self._qz0 + shift[:, 1])
        cos, sin = np.cos(pose.yaw), np.sin(pose.yaw)
        cax = self._qax * cos - self._qaz * sin
        caz = self._qax * sin + self._qaz * cos
        ex, ez = ox + self._qw * cax, oz + self._qw * caz
        nearest, farthest = np.minimum(oz, ez), np.maximum(oz, ez)
        keep = (farthest > NEAR_M) & (nearest < FAR_M)
        # A one-sided face is seen only when the camera (the origin) lies on its outer side.
        keep &= self._qfacing * (ox * caz - oz * cax) >= 0
        # Clip each bottom edge to the near plane; its projection bounds the quad's columns, and the
        # top and bottom edges' projections at the two (clipped) ends bound its rows.
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.clip((NEAR_M - oz) / (ez - oz), 0.0, 1.0)
            ax_, az_ = np.where(oz < NEAR_M, ox + frac * (ex - ox), ox), np.maximum(oz, NEAR_M)
            bx_, bz_ = np.where(ez < NEAR_M, ex + frac * (ox - ex), ex), np.maximum(ez, NEAR_M)
            col_a, col_b = k.cx + k.f * ax_ / az_, k.cx + k.f * bx_ / bz_
        inv_near, inv_far = 1.0 / np.minimum(az_, bz_), 1.0 / np.maximum(az_, bz_)
        above, below = self._qy1 - pose.y, self._qy0 - pose.y
        top = k.cy - k.f * np.maximum(above * inv_near, above * inv_far)
        bottom = k.cy - k.f * np.minimum(below * inv_near, below * inv_far)
        c0 = np.maximum(np.ceil(np.minimum(col_a, col_b) - 1), 0)  # one column of slack each side
        c1 = np.minimum(np.floor(np.maximum(col_a, col_b) + 1), k.width - 1) + 1
        r0 = np.maximum(np.ceil(top), 0)
        r1 = np.minimum(np.floor(bottom), k.height - 1) + 1
        keep &= (c0 < c1) & (r0 < r1)
        index = np.flatnonzero(keep)
        index = index[np.argsort(np.maximum(nearest[index], NEAR_M), kind="stable")]
        bounds = (b[index].astype(np.int64) for b in (c0, c1, r0, r1))
        nearest = np.maximum(nearest[index], NEAR_M)
        return _Visible(index, *bounds, nearest, ox[index], oz[index], cax[index], caz[index])

    def _draw_quads(
        self, t: int, pose: Pose, rgb: np.ndarray, labels: np.ndarray, depth: np.ndarray, surface: np.ndarray
    ) -> None:
        visible = self._visible_quads(t, pose)
        if visible.index.size == 0:
            return
        starts, hit_from, hit_to, tex_col, depth_col, level, base, stride = self._columns(visible)
        c0, r0, r1, nearest = (a.tolist() for a in (visible.c0, visible.r0, visible.r1, visible.nearest))
        dy = self.dy
        for j, i in enumerate(visible.index.tolist()):
            if hit_from[j] >= hit_to[j]:
                continue  # no column's ray meets the quad
            a, b = starts[j] + hit_from[j], starts[j] + hit_to[j]
            left, right, top, bottom = c0[j] + hit_from[j], c0[j] + hit_to[j], r0[j], r1[j]
            zbuf = depth[top:bottom, left:right]
            if nearest[j] >= zbuf.max():
                continue  # entirely behind what is already drawn
            quad = self.scene.quads[i]
            texture, alpha = quad.surface.get()
            s = depth_col[a:b]
            scale_v = np.float32(self._qscale_v[i])
            # Texture row of each pixel: (y1 - height of the hit point) * texels per metre.
            tex_row = np.float32((quad.y1 - pose.y) * scale_v) - (s * scale_v)[None, :] * dy[top:bottom, None]
            mask = (tex_row >= 0) & (tex_row < texture.height) & (s[None, :] < zbuf)
            rows = np.minimum(tex_row.astype(np.int32), texture.height - 1)
            np.maximum(rows, 0, out=rows)
            if alpha is not None:
                mask &= alpha[rows, tex_col[None, a:b]]
            if not mask.any():
                continue
            flat = (rows >> level[None, a:b]) * stride[None, a:b] + base[None, a:b]
            np.copyto(rgb[top:bottom, left:right], np.take(texture.texels, flat, axis=0), where=mask[..., None])
            labels[top:bottom, left:right][mask] = quad.label
            np.copyto(zbuf, s, where=mask)
            surface[top:bottom, left:right][mask] = i + 1

    def _columns(self, visible: _Visible) -> tuple:
        """The per-column part of drawing every visible quad, for all of them at once.

        Visible quad j owns entries starts[j] .. starts[j] + c1[j] - c0[j] of the flat per-column
        arrays, one per image column c0[j] .. c1[j] - 1. Returns (starts, hit_from, hit_to: lists, the
        span of columns, relative to c0, whose ray meets the quad; tex_col: its texture column (int32);
        depth_col: the depth where the ray meets its plane (float32); level: the mip level; base,
        stride: where that texture column starts in the flat mip-map, and the level's row length).
        """
        span = visible.c1 - visible.c0
        starts = np.cumsum(span) - span
        owner = np.repeat(np.arange(span.size), span)
        quad = visible.index[owner]
        col = np.arange(int(span.sum())) - np.repeat(starts - visible.c0, span)
        dx = self.dx[col].astype(np.float64)
        a_x, a_z, o_x, o_z = visible.cax[owner], visible.caz[owner], visible.ox[owner], visible.oz[owner]
        with np.errstate(divide="ignore", invalid="ignore"):
            # The depth s where the column's ray meets the quad's plane, and the position u along the
            # quad's bottom edge (metres from its start).
            s = (a_x * o_z - a_z * o_x) / (a_x - a_z * dx)
            u = s * (a_x * dx + a_z) - (a_x * o_x + a_z * o_z)
            hit = (s > NEAR_M) & (s < FAR_M) & (u >= 0) & (u < self._qw[quad])
            scale_u = self._qscale_u[quad]
            tex_col = np.minimum((u * scale_u).astype(np.int32), self._qcols[quad] - 1)  # garbage where no hit:
        np.maximum(tex_col, 0, out=tex_col)  # any texel will do there, those columns are never drawn
        position = np.arange(col.size)
        hit_from = np.minimum.reduceat(np.where(hit, position, col.size), starts) - starts
        hit_to = np.maximum.reduceat(np.where(hit, position, -1), starts) + 1 - starts
        # Mip level from the larger of the horizontal and vertical texel footprints of a pixel; the
        # horizontal one from the step of u to the next column (the previous one for a quad's last).
        du = np.empty_like(u)
        du[:-1] = u[1:] - u[:-1]
        last = starts + span - 1
        du[last] = np.where(span > 1, du[np.maximum(last - 1, 0)], 0.0)
        footprint = np.maximum(np.abs(du) * scale_u, s * (self._qscale_v[quad] / self.k.f))
        level = mip_level(np.where(hit, footprint, 1.0))
        base = self._qmip_offsets[quad, level] + (tex_col >> level)
        stride = self._qmip_widths[quad, level]
        return starts.tolist(), hit_from.tolist(), hit_to.tolist(), tex_col, s.astype(np.float32), level, base, stride
