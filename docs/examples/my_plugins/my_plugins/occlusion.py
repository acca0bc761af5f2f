"""``python visualize.py task=occlusion``: a task of your own. Occlusion sensitivity (Zeiler & Fergus 2014):
slide a grey square over each image and map how much the class probability drops; score the maps by
deletion / insertion against a random order, as ``task=saliency`` scores its methods."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from visgrad.errors import ConfigError
from visgrad.options import nested, option, optional, positive_int
from visgrad.tasks import Task
from visgrad.tasks.figures import saliency_figure
from visgrad.tasks.inputs import explained_classes, load_images, predict
from visgrad.vision.saliency_metrics import ScoringOptions, score_maps


@dataclass
class OcclusionOptions:
    """``task.*`` of ``task=occlusion``."""

    window: int = option(48, positive_int, "a positive integer (pixels)")
    stride: int = option(24, positive_int, "a positive integer (pixels)")
    num_images: int | None = option(4, optional(positive_int), "null (all) or a positive integer")
    metrics: ScoringOptions = nested(ScoringOptions)


def prepare(run):
    """Check the window against the classifier's input size, load the images and their classes."""
    size = run.classifier.image_size
    if run.options.window > size:
        raise ConfigError(f"task.window={run.options.window}: larger than the {size}-pixel inputs of "
                          f"{run.classifier.name}; use at most {size}")
    batch = load_images(run, None, run.options.num_images)
    return batch, explained_classes(None, batch.labels, predict(run.classifier, batch.images))


@torch.no_grad()
def occlusion_maps(X, y, model, window, stride):
    """X (N, 3, S, S), y (N,) -> (N, S, S): the drop of p(y) when a window at each position is greyed."""
    base = model(X).softmax(1).gather(1, y[:, None])
    S = X.shape[-1]
    starts = range(0, S - window + 1, stride)
    drops = torch.zeros(X.shape[0], 1, len(starts), len(starts), device=X.device)
    for i, top in enumerate(starts):
        for j, left in enumerate(starts):
            occluded = X.clone()
            occluded[..., top:top + window, left:left + window] = 0  # the mean colour once normalised
            drops[:, 0, i, j] = (base - model(occluded).softmax(1).gather(1, y[:, None]))[:, 0]
    return F.interpolate(drops, size=(S, S), mode="bilinear")[:, 0].clamp_min(0)


def run(run, prepared):
    batch, classes = prepared
    opts, classifier = run.options, run.classifier
    y = classes.to(run.device)
    maps = {"occlusion": occlusion_maps(batch.images, y, classifier.model, opts.window, opts.stride)}
    scores = score_maps(batch.images, y, classifier.model, maps, opts.metrics, classifier.norm, seed=run.seed)
    names = [classifier.class_names[int(c)] for c in classes]
    titles = [f"{image}\n{name}" for image, name in zip(batch.names, names, strict=True)]
    run.add_figure(saliency_figure(batch.images.cpu(), {"occlusion": maps["occlusion"].cpu()}, titles,
                                   norm=classifier.norm), "occlusion")
    return {f"occlusion/{name}/{key}": value for name, score in scores.items()
            for key, value in score.metrics().items()}


TASK = Task(name="occlusion", label="occlusion sensitivity", prepare=prepare, run=run,
            options=OcclusionOptions)
