"""Synthetic left-hand radiograph "phantoms" whose anatomy follows bone age and sex.

A seeded, deterministic stand-in for the RSNA Pediatric Bone Age images, so the kit can train
and test on a fresh machine without real data. numpy + cv2 only (no TensorFlow here).

What drives the picture:

* `anatomy(boneage, male)` is a deterministic description of the skeleton at a bone age:
  which carpal ossification centres are visible and how big they are, how wide the epiphyses
  are relative to their metaphyses, how open the growth plates are, and the overall hand size.
* `render_phantom` draws that skeleton inside a soft-tissue hand silhouette (a left hand, PA
  view: palm down, fingers up, thumb on the right of the image), then varies everything that
  must not carry the age: pose (rotation, translation, scale jitter, finger spread), exposure
  (level, contrast, gamma), blur, noise, a lead side marker ("L" / "R") and sometimes a ruler.
  All nuisance draws are made up front in a fixed order that does not depend on the age, so
  two calls with equally seeded generators differ only in anatomy (handy for tests).
* The label is the true bone age plus N(0, sigma) reader noise, clipped to [0, 240] months.

Geometry is built in "hand units" (u): origin at the centre of the capitate, +x towards the
thumb (image right), +y towards the fingers (image up); an adult middle finger tip lies about
0.78 u above the capitate. One affine map takes u to pixels.
"""
import argparse
import dataclasses
import math
import time

import cv2
import numpy as np

KEYPOINT_NAMES = ("middle_finger_tip", "thumb_tip", "capitate_centre")
# Hand regions (`render_phantom(..., regions=True)`): label 1, 2, ... of the region map, 0 outside the hand.
# The thumb's metacarpal and proximal phalanx count with the metacarpals and proximal phalanges,
# its distal phalanx with the distal phalanges.
REGION_NAMES = ("radius_ulna", "carpals", "metacarpals_proximal_phalanges", "middle_phalanges", "distal_phalanges")
CARPAL_ORDER = ("capitate", "hamate", "triquetrum", "lunate", "trapezium", "trapezoid", "scaphoid",
                "pisiform")

MAX_MONTHS = 240.0

# Mean ages (months) at which the carpal ossification centres appear on a PA hand radiograph.
# Approximate values after the Greulich-Pyle atlas (Greulich & Pyle 1959) and the ossification
# table of Gilsanz & Ratib, "Hand Bone Age: A Digital Atlas of Skeletal Maturity" (2005):
# capitate and hamate within the first months, triquetrum ~2-3 y, lunate ~3-4 y, trapezium,
# trapezoid and scaphoid ~4-6 y, pisiform ~9-12 y; girls about 1-2 years ahead of boys.
# The figures are rounded so that the order of appearance is exactly CARPAL_ORDER.
CARPAL_APPEARANCE_MONTHS = {
    False: dict(zip(CARPAL_ORDER, (2, 3, 22, 36, 46, 50, 54, 108))),   # girls
    True: dict(zip(CARPAL_ORDER, (3, 5, 30, 48, 64, 68, 72, 144))),    # boys
}
# Carpal bones keep growing after they appear until about skeletal maturity (months).
CARPAL_MATURE_MONTHS = {False: 150.0, True: 180.0}

# Girls mature faster: the continuous indicators (epiphysis width, growth-plate closure,
# pubertal growth) use a "male-equivalent maturity" m = age * factor. Physes of the hand close
# at about m = 198 (16.5 y in boys, 198 / 1.18 = 14.0 y in girls).
FEMALE_MATURITY_FACTOR = 1.18
_EPIPHYSIS_APPEAR_M = 12.0     # phalangeal / metacarpal epiphyses appear at ~1 y (boys)
_EPIPHYSIS_FULL_M = 172.0      # epiphysis as wide as its metaphysis ("capping") at ~14 y (boys)
_PLATE_NARROW_START_M = 120.0  # physes start to close ...
_PLATE_FUSED_M = 198.0         # ... and are fused by here (the distal radius last)


def _maturity(age_months, male):
    return float(age_months) * (1.0 if male else FEMALE_MATURITY_FACTOR)


def _smoothstep(x):
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _epiphysis_ratio_m(m):
    """Epiphysis width / metaphysis width at male-equivalent maturity m (0 = not ossified)."""
    if m < _EPIPHYSIS_APPEAR_M:
        return 0.0
    p = min((m - _EPIPHYSIS_APPEAR_M) / (_EPIPHYSIS_FULL_M - _EPIPHYSIS_APPEAR_M), 1.0)
    return 0.15 + 0.85 * (1.0 - (1.0 - p) ** 1.6)


def _plate_open_m(m):
    """Growth-plate opening at male-equivalent maturity m: 1 wide open ... 0 fused."""
    if m <= _PLATE_NARROW_START_M:
        return 1.0 - 0.3 * max(m, 0.0) / _PLATE_NARROW_START_M
    x = (m - _PLATE_NARROW_START_M) / (_PLATE_FUSED_M - _PLATE_NARROW_START_M)
    return 0.0 if x >= 1.0 else 0.7 * (1.0 - _smoothstep(x))


def _hand_scale(age_months, male):
    """Hand size relative to an adult man's: ~0.5 at birth, a pubertal spurt, a plateau."""
    m = _maturity(age_months, male)
    s = 0.48 + 0.36 * (1.0 - math.exp(-m / 55.0)) + 0.16 / (1.0 + math.exp(-(m - 160.0) / 18.0))
    return s * (1.0 if male else 0.94)


@dataclasses.dataclass(frozen=True)
class Anatomy:
    """The skeleton at a bone age; a deterministic function of (bone age, sex)."""
    visible_carpals: tuple[str, ...]     # names, in CARPAL_ORDER order
    carpal_sizes: dict[str, float]       # fraction of adult size; 0 when not yet visible
    epiphysis_ratio: float               # epiphysis / metaphysis width, in [0, 1], grows
    growth_plate_open: float             # 1 = wide open, 0 = all fused (radius last)
    hand_scale: float                    # overall size (adult man ~1), increasing with age


def anatomy(boneage_months: float, male: bool) -> Anatomy:
    age = min(max(float(boneage_months), 0.0), MAX_MONTHS)
    male = bool(male)
    appear = CARPAL_APPEARANCE_MONTHS[male]
    mature = CARPAL_MATURE_MONTHS[male]
    sizes = {}
    for name in CARPAL_ORDER:
        a = appear[name]
        if age < a:
            sizes[name] = 0.0
        else:
            # fast growth just after appearance, adult size at skeletal maturity
            g = (1.0 - math.exp(-(age - a) / 50.0)) / (1.0 - math.exp(-(mature - a) / 50.0))
            sizes[name] = 0.35 + 0.65 * min(g, 1.0)
    m = _maturity(age, male)
    return Anatomy(
        visible_carpals=tuple(n for n in CARPAL_ORDER if sizes[n] > 0),
        carpal_sizes=sizes,
        epiphysis_ratio=_epiphysis_ratio_m(m),
        growth_plate_open=_plate_open_m(m),
        hand_scale=_hand_scale(age, male),
    )


@dataclasses.dataclass(frozen=True)
class Phantom:
    image: np.ndarray          # (size, size) uint8
    mask: np.ndarray           # (size, size) uint8, 0 or 255: the soft-tissue silhouette
    keypoints: np.ndarray      # (3, 2) float32, (x, y) pixels of `image`, order KEYPOINT_NAMES
    boneage_months: float      # the label (true age + reader noise), in [0, 240]
    true_boneage_months: float
    male: bool
    regions: np.ndarray | None = None  # (size, size) uint8 region map (REGION_NAMES), when asked for


# ------------------------------------------------------------------------------------------
# Hand geometry (adult man, hand units)

# Carpals: centre (x, y), semi-axes (a, b), rotation in degrees (counter-clockwise, y up).
_CARPALS = {
    "capitate": ((0.000, 0.000), (0.033, 0.050), 0.0),
    "hamate": ((-0.066, 0.006), (0.032, 0.044), -12.0),
    "triquetrum": ((-0.094, -0.058), (0.030, 0.024), 30.0),
    "lunate": ((-0.038, -0.076), (0.033, 0.028), 0.0),
    "trapezium": ((0.092, 0.008), (0.030, 0.028), 20.0),
    "trapezoid": ((0.050, 0.030), (0.024, 0.026), 0.0),
    "scaphoid": ((0.050, -0.068), (0.047, 0.026), 45.0),
    "pisiform": ((-0.108, -0.040), (0.018, 0.018), 0.0),
}

# Fingers: metacarpal base, metacarpal angle (deg, + towards the thumb), fan angle for the
# spread, bone lengths (metacarpal, proximal, middle, distal phalanx) and shaft widths.
_FINGERS = (
    ("little", (-0.094, 0.040), -14.0, -10.0, (0.215, 0.140, 0.085, 0.065),
     (0.034, 0.034, 0.028, 0.023)),
    ("ring", (-0.049, 0.058), -6.0, -5.0, (0.240, 0.178, 0.112, 0.078),
     (0.036, 0.037, 0.031, 0.024)),
    ("middle", (0.002, 0.064), 0.0, 0.0, (0.270, 0.192, 0.122, 0.080),
     (0.039, 0.040, 0.033, 0.025)),
    ("index", (0.056, 0.056), 7.0, 5.0, (0.285, 0.172, 0.104, 0.076),
     (0.039, 0.038, 0.031, 0.024)),
)
# Thumb: metacarpal base near the trapezium, angles of metacarpal / proximal / distal phalanx.
_THUMB_BASE = (0.124, 0.040)
_THUMB_ANGLES = (34.0, 24.0, 18.0)
_THUMB_LENGTHS = (0.165, 0.125, 0.090)
_THUMB_WIDTHS = (0.042, 0.039, 0.031)

# Plates close in order: distal phalanges first, the distal radius last (extra maturity, m).
_PLATE_LEAD = {"distal": 18.0, "middle": 12.0, "proximal": 8.0, "metacarpal": 4.0,
               "ulna": 2.0, "radius": 0.0}
# Ulnar epiphysis appears years after the radial one (~6-7 y vs ~1 y in boys).
_EPI_DELAY = {"radius": -3.0, "ulna": 70.0}

_SHIFT = 3          # sub-pixel bits for cv2 drawing
_SS = 2             # supersampling factor


def _dir(theta_deg):
    t = math.radians(theta_deg)
    return np.array([math.sin(t), math.cos(t)])


class _Canvas:
    """Draws polygons given in hand units onto supersampled uint8 layers."""

    def __init__(self, size, matrix):
        self.n = size * _SS
        self.m = matrix                              # 2x3: hand units -> final pixels
        self.tissue = np.zeros((self.n, self.n), np.uint8)
        self.bone = np.zeros((self.n, self.n), np.uint8)
        self.labels = None                           # region labels of the bone pixels, when asked for
        self.region = 0

    def set_region(self, name):
        """The region (REGION_NAMES) of the bones drawn next; only the region map reads it."""
        self.region = REGION_NAMES.index(name) + 1

    def label_only(self, pts):
        """Marks a polygon with the current region in the region map only (no pixel changes)."""
        if self.labels is not None:
            cv2.fillPoly(self.labels, [self._fixed(pts)], self.region, cv2.LINE_8, _SHIFT)

    def px(self, pts):
        """Final-image pixel coordinates (float) of hand-unit points (..., 2)."""
        pts = np.asarray(pts, np.float64)
        return pts @ self.m[:, :2].T + self.m[:, 2]

    def _fixed(self, pts):
        p = self.px(pts) * _SS + (_SS - 1) / 2.0      # supersampled pixel centres
        return np.round(p * (1 << _SHIFT)).astype(np.int32)

    def poly(self, layer, pts, value):
        cv2.fillPoly(layer, [self._fixed(pts)], int(value), cv2.LINE_8, _SHIFT)
        if layer is self.bone and self.labels is not None:  # the region map follows the bone layer
            cv2.fillPoly(self.labels, [self._fixed(pts)], self.region if value > 0 else 0, cv2.LINE_8, _SHIFT)

    def convex(self, layer, pts, value):
        p = self._fixed(pts)
        cv2.fillConvexPoly(layer, cv2.convexHull(p), int(value), cv2.LINE_8, _SHIFT)

    def capsule(self, layer, p0, p1, diameter_u, value):
        scale = np.linalg.norm(self.m[:, 0]) * _SS
        t = max(1, int(round(diameter_u * scale)))
        a, b = self._fixed([p0, p1])
        cv2.line(layer, tuple(int(v) for v in a), tuple(int(v) for v in b), int(value), t,
                 cv2.LINE_8, _SHIFT)


_ELLIPSE_T = np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)
_COS, _SIN = np.cos(_ELLIPSE_T), np.sin(_ELLIPSE_T)
_CAP = np.linspace(0.5 * np.pi, -0.5 * np.pi, 7)


def _ellipse(c, a, b, axis_dir):
    """Points of an ellipse, semi-axis a along unit vector axis_dir, b across it."""
    u = np.asarray(axis_dir, np.float64)
    n = np.array([-u[1], u[0]])
    return (np.asarray(c)[None] + (a * _COS)[:, None] * u[None] + (b * _SIN)[:, None] * n[None])


def _shaft(s0, s1, w0, wm, w1, d0, d1):
    """A long-bone shaft from s0 to s1: end widths w0 / w1 flaring into a waist wm; rounded
    caps that bulge d0 beyond s0 and d1 beyond s1."""
    s0, s1 = np.asarray(s0, np.float64), np.asarray(s1, np.float64)
    ax = s1 - s0
    length = float(np.linalg.norm(ax))
    a = ax / max(length, 1e-9)
    n = np.array([-a[1], a[0]])
    f0, f1 = min(1.3 * w0, 0.5 * length), min(1.3 * w1, 0.5 * length)
    s = np.concatenate([np.linspace(0.0, f0, 5), np.linspace(length - f1, length, 5)])
    h = 0.5 * wm + 0.5 * (w0 - wm) * np.clip(1 - s / f0, 0, 1) ** 2 \
        + 0.5 * (w1 - wm) * np.clip(1 - (length - s) / f1, 0, 1) ** 2
    centre = s0[None] + s[:, None] * a[None]
    left = centre + h[:, None] * n[None]
    right = (centre - h[:, None] * n[None])[::-1]
    cos, sin = np.cos(_CAP)[:, None], np.sin(_CAP)[:, None]
    cap1 = s1[None] + d1 * cos * a[None] + 0.5 * w1 * sin * n[None]
    cap0 = s0[None] - d0 * cos * a[None] - 0.5 * w0 * sin * n[None]
    return np.concatenate([left, cap1, right, cap0])


def _long_bone(cv, joint, other, w_epi_end, w_mid, w_other, ratio, plate, values,
               kz=0.5, kg=0.40, tuft=False):
    """Draws a tubular bone whose epiphysis sits at `joint` (its articular surface).

    The first (kz + kg) * w_epi_end of the bone from `joint` is the epiphyseal zone: an
    ossification centre `ratio` times as wide as the metaphysis, separated from it by a
    radiolucent growth plate of width kg * w_epi_end * plate (0 when fused).
    """
    cortex, medulla, epi = values
    joint, other = np.asarray(joint, np.float64), np.asarray(other, np.float64)
    a = other - joint
    length = float(np.linalg.norm(a))
    a /= length
    z, g0 = kz * w_epi_end, kg * w_epi_end
    meta = joint + a * (z + g0)
    d_other = 0.15 * w_other if tuft else 0.22 * w_other
    cv.poly(cv.bone, _shaft(meta, other, w_epi_end, w_mid, w_other, 0.06 * w_epi_end, d_other),
            cortex)
    inner0 = meta + a * 0.25 * (length - z - g0)
    inner1 = other - a * 0.25 * (length - z - g0)
    cv.poly(cv.bone, _shaft(inner0, inner1, 0.45 * w_mid, 0.42 * w_mid, 0.45 * w_mid,
                            0.1 * w_mid, 0.1 * w_mid), medulla)
    if ratio > 0.02:
        g = g0 * plate
        e_h = z * (0.3 + 0.7 * ratio)
        if plate <= 0.0:          # fused: the epiphysis fills the zone up to the metaphysis
            e_h, g = z + g0 * 0.3, 0.0
        centre = joint + a * (z + g0 - g - 0.5 * e_h)
        cv.poly(cv.bone, _ellipse(centre, 0.5 * e_h, 0.5 * ratio * w_epi_end * 1.04, a), epi)


def _nuisance(rng):
    """Every random draw of a render, in a fixed order that does not depend on age or size."""
    u = rng.random(24)
    z = rng.standard_normal(8)
    return dict(
        rotation=float(np.clip(z[0] * 7.0, -16.0, 16.0)),          # degrees
        shift=(u[0] - 0.5, u[1] - 0.5),                             # x 0.08 image
        scale=0.94 + 0.12 * u[2],
        spread=0.2 + 1.2 * u[3],
        finger_jitter=np.clip(z[1:5] * 2.0, -4, 4),
        thumb_jitter=float(np.clip(z[5] * 5.0, -10, 10)),
        background=0.03 + 0.12 * u[4],
        bg_gradient=(u[5] - 0.5) * 0.12,
        tissue=0.16 + 0.12 * u[6],
        bone=0.40 + 0.18 * u[7],
        chub=u[8],
        contrast=0.8 + 0.4 * u[9],
        brightness=(u[10] - 0.5) * 0.12,
        gamma=math.exp((u[11] - 0.5) * 0.6),
        noise=0.006 + 0.03 * u[12],
        blur=1.0 * u[13],
        marker=u[14] < 0.9, marker_r=u[15] < 0.15, marker_corner=int(u[16] * 4) % 4,
        marker_box=u[17] < 0.5, marker_size=0.8 + 0.4 * u[18],
        ruler=u[19] < 0.25, ruler_side=u[20] < 0.5,
        ruler_span=(0.15 + 0.2 * u[21], 0.6 + 0.3 * u[22]),
        label_z=float(z[6]),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _hand_transform(size, hand_scale, nz):
    """2x3 matrix: hand units (y up) -> final image pixels (y down), with pose jitter."""
    ppu = 0.74 * size * hand_scale * nz["scale"]
    th = math.radians(nz["rotation"])
    c, s = math.cos(th), math.sin(th)
    # rotate (counter-clockwise on screen for positive angles) about the hand's middle
    rot = np.array([[c, s], [-s, c]]) @ np.array([[ppu, 0.0], [0.0, -ppu]])
    centre_u = np.array([0.07, 0.31])
    target = np.array([0.5 * size + nz["shift"][0] * 0.08 * size,
                       0.44 * size + nz["shift"][1] * 0.08 * size])
    t = target - rot @ centre_u
    return np.concatenate([rot, t[:, None]], axis=1)


def _keep_inside(matrix, pts_u, size, margin):
    """Translates the matrix so that the given hand points lie inside the image."""
    p = np.asarray(pts_u) @ matrix[:, :2].T + matrix[:, 2]
    lo, hi = margin, size - 1 - margin
    dx = max(lo - p[:, 0].min(), 0.0) - max(p[:, 0].max() - hi, 0.0)
    dy = max(lo - p[:, 1].min(), 0.0) - max(p[:, 1].max() - hi, 0.0)
    out = matrix.copy()
    out[:, 2] += (dx, dy)
    return out


def _build_hand(anat, m, nz):
    """Soft tissue and bone primitives in hand units.

    Returns (draw(canvas), key points in hand units (KEYPOINT_NAMES order), the finger and
    thumb tips that must stay inside the image)."""
    chub = 1.0 + 0.25 * math.exp(-m / 60.0) + 0.08 * nz["chub"]   # infants: plumper fingers
    bone_v = (235, 175, 225)
    plate = {k: _plate_open_m(m + lead) for k, lead in _PLATE_LEAD.items()}
    r_hand = _epiphysis_ratio_m(m)

    fingers = []   # (name, list of (joint_start, joint_end, width)) for bones in order
    for i, (name, base, mc_angle, fan, lengths, widths) in enumerate(_FINGERS):
        base = np.array(base)
        mc_end = base + lengths[0] * _dir(mc_angle)
        angle = mc_angle + nz["spread"] * fan + nz["finger_jitter"][i]
        pts = [base, mc_end]
        p = mc_end
        for k in range(1, 4):
            gap = 0.32 * widths[k]
            p0 = p + gap * _dir(angle)
            p1 = p0 + lengths[k] * _dir(angle)
            pts += [p0, p1]
            p = p1
            angle += -0.08 * angle   # fingers curve slightly towards the middle
        fingers.append((name, pts, widths))

    t_base = np.array(_THUMB_BASE)
    th_pts, p = [], t_base
    for k in range(3):
        ang = _THUMB_ANGLES[k] + nz["thumb_jitter"] * (0.6 if k == 0 else 1.0) \
            + (nz["spread"] - 0.8) * 6.0
        if k > 0:
            p = p + 0.32 * _THUMB_WIDTHS[k] * _dir(ang)
        q = p + _THUMB_LENGTHS[k] * _dir(ang)
        th_pts += [p, q]
        p = q

    def soft(wbone):
        return 2.05 * wbone * chub

    def tip_of(p_prev, p_last, w):
        d = p_last - p_prev
        d /= np.linalg.norm(d)
        return p_last + d * 0.5 * soft(w) * 0.92

    middle = fingers[2]
    middle_tip = tip_of(middle[1][6], middle[1][7], middle[2][3])
    thumb_tip = tip_of(th_pts[4], th_pts[5], _THUMB_WIDTHS[2])
    extreme = [middle_tip, thumb_tip, tip_of(fingers[0][1][6], fingers[0][1][7], fingers[0][2][3]),
               tip_of(fingers[3][1][6], fingers[3][1][7], fingers[3][2][3])]

    def draw(cv):
        # --- soft tissue ---
        T = cv.tissue
        cv.poly(T, [(-0.128 * chub, -0.08), (0.148 * chub, -0.08), (0.150 * chub, -0.35),
                    (0.17, -2.0), (-0.15, -2.0), (-0.132 * chub, -0.35)], 255)
        hull = [(-0.128 * chub, -0.08), (0.148 * chub, -0.08), (0.13 + 0.02 * chub, -0.02),
                (-0.150 * chub, 0.02), (-0.158 * chub, 0.12)]
        for name, pts, widths in fingers:
            b, e = pts[0], pts[1]
            d = (e - b) / np.linalg.norm(e - b)
            n = np.array([-d[1], d[0]])
            hw = 0.5 * soft(widths[1]) * (1.15 if name in ("little", "index") else 1.0)
            pp0, pp1 = pts[2], pts[3]
            web = pp0 + 0.28 * (pp1 - pp0)
            hull += [b + n * hw, b - n * hw, e + n * hw, e - n * hw, web + n * hw, web - n * hw]
        t0, t1 = th_pts[0], th_pts[1]
        d = (t1 - t0) / np.linalg.norm(t1 - t0)
        n = np.array([-d[1], d[0]])
        hw = 0.5 * soft(_THUMB_WIDTHS[0]) * 1.15
        for f in (0.0, 0.3, 0.5):
            q = t0 + f * (t1 - t0)
            hull += [q + n * hw, q - n * hw]
        cv.convex(T, hull, 255)
        for name, pts, widths in fingers:
            cv.capsule(T, pts[1], pts[3], soft(widths[1]), 255)
            cv.capsule(T, pts[3], pts[5], soft(widths[2]), 255)
            cv.capsule(T, pts[5], pts[7], soft(widths[3]), 255)
        cv.capsule(T, th_pts[0], th_pts[3], soft(_THUMB_WIDTHS[1]) * 1.05, 255)
        cv.capsule(T, th_pts[3], th_pts[5], soft(_THUMB_WIDTHS[2]), 255)

        # --- forearm bones (epiphysis at the distal, joint end) ---
        cv.set_region("radius_ulna")
        _long_bone(cv, (0.038, -0.100), (0.030, -2.0), 0.104, 0.060, 0.060,
                   _epiphysis_ratio_m(m - _EPI_DELAY["radius"]), plate["radius"], bone_v,
                   kz=0.32, kg=0.13)
        _long_bone(cv, (-0.090, -0.110), (-0.078, -2.0), 0.050, 0.034, 0.034,
                   _epiphysis_ratio_m(m - _EPI_DELAY["ulna"]), plate["ulna"], bone_v,
                   kz=0.45, kg=0.24)

        # --- carpals ---
        cv.set_region("carpals")
        for name in CARPAL_ORDER:
            size = anat.carpal_sizes[name]
            c, (a, b), rot = _CARPALS[name]
            if size <= 0:  # not ossified yet: its place still belongs to the carpals (region map only)
                cv.label_only(_ellipse(c, 0.35 * a, 0.35 * b, _dir(90.0 - rot)))
                continue
            mean = 0.5 * (a + b)
            a_, b_ = (mean + (a - mean) * size) * size, (mean + (b - mean) * size) * size
            ax = _dir(90.0 - rot)
            if name != "pisiform":   # (the pisiform lies over the triquetrum)
                gap = 0.006 * size    # joint space: cut the bone already drawn around it
                cv.poly(cv.bone, _ellipse(c, a_ + gap, b_ + gap, ax), 0)
            cv.poly(cv.bone, _ellipse(c, a_, b_, ax), 228 if name != "pisiform" else 250)
            if size > 0.45:
                cv.poly(cv.bone, _ellipse(c, 0.72 * a_, 0.72 * b_, ax), 205)

        # --- metacarpals and phalanges ---
        for name, pts, widths in fingers:
            # metacarpals 2-5: epiphysis at the head (distal end)
            cv.set_region("metacarpals_proximal_phalanges")
            _long_bone(cv, pts[1], pts[0], widths[0] * 1.05, widths[0] * 0.72, widths[0] * 1.1,
                       r_hand, plate["metacarpal"], bone_v)
            for k, kind in ((1, "proximal"), (2, "middle"), (3, "distal")):
                cv.set_region({"proximal": "metacarpals_proximal_phalanges", "middle": "middle_phalanges",
                               "distal": "distal_phalanges"}[kind])
                w = widths[k]
                w_other = 0.78 * w if kind == "distal" else 0.95 * w
                _long_bone(cv, pts[2 * k], pts[2 * k + 1], w * 1.08, w * 0.70, w_other,
                           r_hand, plate[kind], bone_v, tuft=(kind == "distal"))
        # thumb: the metacarpal's epiphysis is at its base, like a phalanx
        for k, kind in ((0, "metacarpal"), (1, "proximal"), (2, "distal")):
            cv.set_region("distal_phalanges" if kind == "distal" else "metacarpals_proximal_phalanges")
            w = _THUMB_WIDTHS[k]
            w_other = 0.8 * w if kind == "distal" else 1.0 * w
            _long_bone(cv, th_pts[2 * k], th_pts[2 * k + 1], w * 1.08, w * 0.70, w_other,
                       r_hand, plate[kind], bone_v, tuft=(kind == "distal"))

    return draw, np.array([middle_tip, thumb_tip, (0.0, 0.0)]), np.array(extreme)


def _draw_objects(img, nz, size):
    """Lead side marker and ruler, drawn onto the float image (not part of the hand mask)."""
    layer = np.zeros((size, size), np.uint8)
    if nz["ruler"]:
        w = max(3, int(round(0.045 * size)))
        x0 = 2 if nz["ruler_side"] else size - 2 - w
        y0, y1 = int(nz["ruler_span"][0] * size), int(nz["ruler_span"][1] * size)
        layer[y0:y1, x0:x0 + w] = 110
        step = max(2, size // 48)
        for j, y in enumerate(range(y0 + step, y1 - 1, step)):
            ln = w if j % 5 == 4 else w // 2
            xs = slice(x0, x0 + ln) if nz["ruler_side"] else slice(x0 + w - ln, x0 + w)
            layer[y, xs] = 230
    if nz["marker"]:
        text = "R" if nz["marker_r"] else "L"
        scale = size / 256.0 * 1.1 * nz["marker_size"]
        thick = max(1, int(round(2.2 * size / 256.0)))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        pad = int(0.05 * size) + 2
        corner = nz["marker_corner"]
        x = pad if corner in (0, 2) else size - pad - tw
        y = pad + th if corner in (0, 1) else size - pad
        cv2.putText(layer, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 245, thick, cv2.LINE_AA)
        if nz["marker_box"]:
            m = max(2, int(0.015 * size))
            cv2.rectangle(layer, (x - m, y - th - m), (x + tw + m, y + m), 200, max(1, thick // 2))
    return np.maximum(img, layer.astype(np.float32) * (1.0 / 255.0))


def _territories(labels, mask):
    """Each hand-mask pixel gets the region of the nearest labelled bone pixel; 0 outside the mask."""
    bone = labels > 0
    if not bone.any():
        return np.zeros_like(labels)
    _, nearest = cv2.distanceTransformWithLabels(np.where(bone, 0, 1).astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    region_of = np.zeros(int(nearest.max()) + 1, np.uint8)
    region_of[nearest[bone]] = labels[bone]
    return np.where(mask > 0, region_of[nearest], 0).astype(np.uint8)


def render_phantom(true_boneage_months: float, male: bool, rng: np.random.Generator,
                   size: int = 256, label_noise_months: float = 6.0, regions: bool = False) -> Phantom:
    """Draws one phantom of a given true bone age and sex; all variation comes from `rng`.

    regions: also return the region map (`Phantom.regions`, labels of REGION_NAMES from 1, 0 outside
    the hand mask): the bones the generator drew for each region (a carpal not yet ossified still
    marks its place), and every other hand-mask pixel given to the region of the nearest such bone.
    The pixels are the same either way."""
    size = int(size)
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    age = min(max(float(true_boneage_months), 0.0), MAX_MONTHS)
    male = bool(male)
    nz = _nuisance(rng)
    anat = anatomy(age, male)
    m = _maturity(age, male)

    draw, keypoints_u, extreme_u = _build_hand(anat, m, nz)
    matrix = _hand_transform(size, anat.hand_scale, nz)
    matrix = _keep_inside(matrix, extreme_u, size, margin=0.02 * size + 1)
    cv = _Canvas(size, matrix)
    if regions:
        cv.labels = np.zeros((cv.n, cv.n), np.uint8)
    draw(cv)

    tissue = cv2.resize(cv.tissue, (size, size), interpolation=cv2.INTER_AREA)
    bone = cv2.resize(cv.bone, (size, size), interpolation=cv2.INTER_AREA)
    mask = np.where(tissue >= 128, 255, 0).astype(np.uint8)
    # soft-tissue "thickness": thicker in the palm and forearm than in the fingers
    q = max(8, size // 4)
    small = cv2.resize(tissue, (q, q), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), q / 40.0)
    thick = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR) * (1.0 / 255.0)
    t = tissue.astype(np.float32) * (1.0 / 255.0)
    b = bone.astype(np.float32) * (1.0 / 255.0)

    density = 0.8 + 0.2 * min(m / 180.0, 1.0)     # bone mineralisation rises with age
    yy = (np.arange(size, dtype=np.float32) / size - 0.5)[:, None]
    img = (nz["background"] + nz["bg_gradient"] * yy) \
        + nz["tissue"] * t * (0.45 + 0.75 * np.minimum(thick * 1.4, 1.0)) \
        + nz["bone"] * density * b
    img = _draw_objects(img.astype(np.float32), nz, size)
    if nz["blur"] > 0.3:
        sigma = nz["blur"] * size / 256.0
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = (img - 0.5) * nz["contrast"] + 0.5 + nz["brightness"]
    np.clip(img, 0.0, 1.0, out=img)
    img = img ** nz["gamma"]
    noise_rng = np.random.default_rng(nz["noise_seed"])
    img += noise_rng.standard_normal((size, size), dtype=np.float32) * nz["noise"]
    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)

    label = float(np.clip(age + label_noise_months * nz["label_z"], 0.0, MAX_MONTHS))
    kp = cv.px(keypoints_u).astype(np.float32)
    region_map = None
    if regions:
        region_map = _territories(cv2.resize(cv.labels, (size, size), interpolation=cv2.INTER_NEAREST), mask)
    return Phantom(image=image, mask=mask, keypoints=kp, boneage_months=label,
                   true_boneage_months=age, male=male, regions=region_map)


def sample_phantom(index: int, seed: int, size: int = 256, regions: bool = False) -> Phantom:
    """The phantom number `index` of data set `seed`; independent of every other index."""
    rng = np.random.default_rng([int(seed), int(index)])
    male = bool(rng.random() < 0.54)
    age = float(rng.uniform(1.0, 228.0))
    return render_phantom(age, male, rng, size=size, regions=regions)


def contact_sheet(path, ages_years=(1, 3, 6, 9, 12, 15, 18), size=256, seed=0) -> None:
    """A PNG grid of phantoms: rows female / male, columns bone ages (years)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.io import atomic_savefig

    ages_years = tuple(ages_years)
    fig, axes = plt.subplots(2, len(ages_years), figsize=(2.0 * len(ages_years), 4.5),
                             squeeze=False)
    for row, male in enumerate((False, True)):
        for col, years in enumerate(ages_years):
            rng = np.random.default_rng([int(seed), row, col])
            ph = render_phantom(12.0 * years, male, rng, size=size)
            ax = axes[row, col]
            ax.imshow(ph.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(f"{'boy' if male else 'girl'}, {years:g} y", fontsize=10)
            ax.set_axis_off()
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def _time_renders(n, size):
    cv2.setNumThreads(1)
    sample_phantom(0, 0, size)      # warm up
    t0 = time.perf_counter()
    for i in range(n):
        sample_phantom(i, 0, size)
    return (time.perf_counter() - t0) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contact-sheet", metavar="PNG", help="write a contact sheet here")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time", type=int, metavar="N", default=0,
                        help="render N phantoms on one thread and print ms per phantom")
    args = parser.parse_args(argv)
    if args.contact_sheet:
        contact_sheet(args.contact_sheet, size=args.size, seed=args.seed)
        print(f"wrote {args.contact_sheet}")
    if args.time:
        print(f"{_time_renders(args.time, args.size) * 1e3:.2f} ms per {args.size} px phantom "
              f"(one thread, mean of {args.time})")
    if not (args.contact_sheet or args.time):
        parser.error("nothing to do: pass --contact-sheet PNG and/or --time N")


if __name__ == "__main__":
    main()
