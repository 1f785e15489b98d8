"""Training losses: the density loss (MSE or Bayesian) and the plan's optional terms."""

from model.losses.bayesian import BayesianLoss, bayesian_image_loss
from model.losses.counting import CountingLoss, build_loss
from model.losses.density import MSEDensityLoss
from model.losses.local_count import local_count_loss
from model.losses.regularisers import domain_loss, feature_l1, total_variation
from model.targets import gaussian_density, inside_points

__all__ = [
    "BayesianLoss",
    "CountingLoss",
    "MSEDensityLoss",
    "bayesian_image_loss",
    "build_loss",
    "domain_loss",
    "feature_l1",
    "gaussian_density",
    "inside_points",
    "local_count_loss",
    "total_variation",
]
