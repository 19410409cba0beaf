"""Nearest centroid on the sphere: a k-d tree over 3-D unit vectors (chord length grows with
great-circle distance, so the nearest by chord is the nearest on the ground; no projection,
valid anywhere). Vectorised: a million points take about a second."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

EARTH_RADIUS_KM = 6371.0088


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(np.asarray(lat, dtype=float)), np.radians(np.asarray(lon, dtype=float))
    cos_phi = np.cos(phi)
    return np.column_stack((cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)))


def chord(km: float) -> float:
    return 2.0 * np.sin(min(km, np.pi * EARTH_RADIUS_KM) / (2.0 * EARTH_RADIUS_KM))


class NearestCentroid:
    """Index of the nearest of a fixed set of centroids (lat/lon in degrees, WGS84)."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray):
        self.size = len(lat)
        self.tree = cKDTree(unit_vectors(lat, lon)) if self.size else None

    def query(self, lat: np.ndarray, lon: np.ndarray, max_km: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(index, distance_km) per point; index -1 (distance inf) where the point is missing,
        not a coordinate, or farther than ``max_km`` from every centroid."""
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        index = np.full(lat.shape[0], -1, dtype=np.int64)
        dist = np.full(lat.shape[0], np.inf)
        ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        if self.tree is None or not ok.any():
            return index, dist
        bound = chord(max_km) if max_km is not None else np.inf
        d, i = self.tree.query(unit_vectors(lat[ok], lon[ok]), k=1, distance_upper_bound=bound, workers=-1)
        found = np.isfinite(d)
        sub_index = np.where(found, i, -1)
        sub_dist = np.where(found, 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(d / 2.0, 0, 1)), np.inf)
        index[ok], dist[ok] = sub_index, sub_dist
        return index, dist
