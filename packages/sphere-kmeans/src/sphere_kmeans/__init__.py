"""sphere-kmeans: spherical K-means and other patch makers for HEALPix sky regions."""

from ._kmeans import KMeansResult as KMeansResult
from ._kmeans import kmeans as kmeans
from ._kmeans import kmeans_batch as kmeans_batch
from ._labels import binned_labels as binned_labels
from ._labels import labels_to_map as labels_to_map
from ._labels import multires_labels as multires_labels
from ._labels import patch_sizes as patch_sizes
from ._labels import relabel_contiguous as relabel_contiguous
from ._regions import disjoint_zones as disjoint_zones
from ._regions import hemisphere_split as hemisphere_split
from ._regions import pixel_neighbours as pixel_neighbours
from ._regions import pixel_vectors as pixel_vectors

__version__ = "0.2.0"

__all__ = [
    "KMeansResult",
    "binned_labels",
    "disjoint_zones",
    "hemisphere_split",
    "kmeans",
    "kmeans_batch",
    "labels_to_map",
    "multires_labels",
    "patch_sizes",
    "pixel_neighbours",
    "pixel_vectors",
    "relabel_contiguous",
]
