"""visualize.py reads every task option before any work, one line per bad or unknown key, as train.py does;
every shipped task config sets its task's declared defaults, except the documented presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from visgrad.errors import ConfigError
from visgrad.options import defaults
from visgrad.tasks import TASKS, run_task
from visgrad.tasks.config import LIFECYCLE_KEYS, read_options

ROOT = Path(__file__).resolve().parents[1]
TASK_FILES = sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))
CLASSIFIERS = sorted(p.stem for p in (ROOT / "conf" / "classifier").glob("*.yaml"))


def options_of(cfg):
    """(options, entry options) of the task that ``cfg.task.name`` names."""
    return read_options(TASKS.get(cfg.task.name), OmegaConf.to_container(cfg.task, resolve=True))


def problems(cfg) -> list[str]:
    try:
        options_of(cfg)
    except ConfigError as err:
        return str(err).splitlines()
    return []


def flat(mapping: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value and key != "strategies":
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_task_file_names_a_registered_task(compose_cfg) -> None:
    for name in TASK_FILES:
        assert compose_cfg("visualize", [f"task={name}"]).task.name == name
    assert sorted(TASKS.names()) == TASK_FILES


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_task_configs_set_the_declared_defaults_except_presets(compose_cfg, classifier: str) -> None:
    """Each conf/task/X.yaml sets every option of its task (and the options node of every registry entry
    it ships) to the declared default; for a classifier, exactly the keys of
    conf/task_presets/X/<classifier>.yaml differ, with their values."""
    for name in TASK_FILES:
        cfg = compose_cfg("visualize", [f"task={name}", f"classifier={classifier}"])
        options, entry_options = options_of(cfg)
        node = OmegaConf.to_container(cfg.task, resolve=True)
        node = {k: v for k, v in node.items() if k not in LIFECYCLE_KEYS}
        if name == "robustness":  # classifier configs of conf/classifier/, composed by its defaults list
            node["classifiers"] = {}
        declared = {**defaults(type(options)),
                    **{entry: defaults(type(opts)) for entry, opts in entry_options.items()}}
        assert set(node) == set(declared), name  # the file shows every option, and no other key
        preset_file = ROOT / "conf" / "task_presets" / name / f"{classifier}.yaml"
        preset = OmegaConf.to_container(OmegaConf.load(preset_file).task) if preset_file.is_file() else {}
        preset = flat(preset)
        actual, expected = flat(node), flat(declared)
        assert {k for k in expected if actual[k] != expected[k]} == set(preset), (name, classifier)
        assert {k: actual[k] for k in preset} == preset


@pytest.mark.parametrize(("overrides", "expected"), [
    (["task=class_viz", "task.num_iterations=-3", "task.pixel.blur_sigma=-1"],
     ["task.num_iterations=-3: must be a positive integer; e.g. task.num_iterations=128",
      "task.pixel.blur_sigma=-1: must be a number >= 0; e.g. task.pixel.blur_sigma=0.5"]),
    (["task=class_viz", "task.robustness.scale=[1.5,0.2]"],
     ["task.robustness.scale=[1.5,0.2]: must be two area fractions [low, high] in (0, 1]; "
      "e.g. task.robustness.scale=[0.5,1.0]"]),
    (["task=class_viz", "task.robustness.scale=[0.9,0.5]", "task.param=bogus_param"],
     ["task.param='bogus_param': unknown class-visualization parameterisation 'bogus_param'; one of fourier, "
      "pixel, or the dotted path of a Parameterization in your own package (my_package.module.name)",
      "task.robustness.scale=[0.9, 0.5]: the low fraction is above the high one; give [low, high], "
      "e.g. [0.5,1.0]"]),
    (["task=fooling", "task.normalized_gradient.learning_rate=-1", "task.normalized_gradient.max_iter=0",
      "task.targets=[]"],
     ["task.targets=[]: must be null (a random other class per input), or one or a non-empty list of "
      "targets: a class index or a class name; "
      "e.g. task.targets=['stingray','goldfinch','school bus','pizza']",
      "task.normalized_gradient.learning_rate=-1: must be a positive number; "
      "e.g. task.normalized_gradient.learning_rate=1.0",
      "task.normalized_gradient.max_iter=0: must be a positive integer; "
      "e.g. task.normalized_gradient.max_iter=100"]),
    (["task=saliency", "task.num_images=0", "task.integrated_gradients.steps=0", "task.methods=bogus_method",
      "task.metrics.deletion_fill=white"],
     ["task.methods='bogus_method': unknown attribution method 'bogus_method'; one of vanilla, smoothgrad, "
      "integrated_gradients, attention_rollout, input_x_gradient, guided_backprop, gradcam, guided_gradcam, "
      "occlusion, rise, or the dotted path of an Attribution in your own package (my_package.module.name)",
      "task.num_images=0: must be null (all) or a positive integer; e.g. task.num_images=200",
      "task.metrics.deletion_fill='white': must be one of blur, black; "
      "e.g. task.metrics.deletion_fill='blur'",
      "task.integrated_gradients.steps=0: must be a positive integer; "
      "e.g. task.integrated_gradients.steps=12"]),
    (["task=style_transfer", "task.steps=[100,0]", "task.style_weights=[1,-2]", "task.image_size=8",
      "task.optimizer=sgd"],
     ["task.image_size=8: must be an integer >= 16; e.g. task.image_size=192",
      "task.style_weights=[1,-2]: must be a number >= 0 or a list of them (one per style layer); "
      "e.g. task.style_weights=1.0",
      "task.optimizer='sgd': must be one of adam, lbfgs; e.g. task.optimizer='adam'",
      "task.steps=[100,0]: must be a positive integer (or one per scale); e.g. task.steps=150"]),
    (["task=style_transfer", "task.scales=[0.5,1.0]", "task.steps=[1,2,3]", "content=null"],
     ["task.steps=[1, 2, 3] must hold one positive number per scale of scales=[0.5, 1.0]",
      "task.content=null: init='content', content_weight=1.0 need a content image; set content=PATH"]),
    (["task=feature_inversion", "task.content_layer=[]"],
     ["task.content_layer=[]: must be null (the network's), a module index or a list of them; "
      "e.g. task.content_layer=[0,1,3,5,8]"]),
    (["task=captions", "task.max_length=0", "task.split=test"],
     ["task.split='test': must be train or val; e.g. task.split='val'",
      "task.max_length=0: must be a positive integer; e.g. task.max_length=30"]),
    (["task=captions", "task.strategies.beam.beam_size=0", "+task.strategies.hot.kind=temperature",
      "+task.strategies.hot.temperature=-1"],
     ["task.strategies.beam={'kind': 'beam', 'beam_size': 0, 'length_alpha': 0.7}: beam_size must be >= 1, "
      "got 0",
      "task.strategies.hot={'kind': 'temperature', 'temperature': -1}: temperature must be > 0 (small values "
      "approach greedy), got -1"]),
])
def test_bad_task_options_one_line_each(compose_cfg, overrides: list[str], expected: list[str]) -> None:
    assert problems(compose_cfg("visualize", overrides)) == expected


@pytest.mark.parametrize(("overrides", "expected"), [
    (["+task.foo=1"], r"^task.foo: not an option of SaliencyOptions \(methods, images, num_images, num_show, "
                      r"target, metrics\)$"),
    (["+task.smoothgrad.bogus_option=1"],
     r"^task.smoothgrad.bogus_option: not an option of SmoothGradOptions"),
    (["+task.vanilla.steps=1"], r"^task.vanilla: the attribution method 'vanilla' has no options$"),
    (["task=fooling", "+task.normalized_gradient.epsilon=8"],
     r"^task.normalized_gradient.epsilon: not an option of NormalizedGradientOptions"),
    (["task=texture", "+task.bogus_key=1"], r"^task.bogus_key: not an option of TextureOptions"),
])
def test_unknown_keys_are_refused(compose_cfg, overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        options_of(compose_cfg("visualize", overrides))


def test_an_unknown_task_name_is_refused(compose_cfg) -> None:
    cfg = compose_cfg("visualize", ["task.name=bogus_task"])
    with pytest.raises(ConfigError, match=r"^task.name='bogus_task': unknown task 'bogus_task'; one of "
                                          r"saliency, "):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()


def test_bad_options_are_refused_before_the_classifier_is_trained(compose_cfg, tmp_path: Path) -> None:
    checkpoint = tmp_path / "shapes_cnn.pt"
    cfg = compose_cfg("visualize", ["task=class_viz", "task.num_iterations=-3", "classifier=shapes",
                                    f"classifier.checkpoint={checkpoint}"])
    with pytest.raises(ConfigError, match=r"^task.num_iterations=-3: must be a positive integer"):
        run_task(cfg)
    assert not checkpoint.exists() and not Path(cfg.paths.output_dir).exists()


def test_the_specialised_options_keep_the_checks_of_style_transfer() -> None:
    from visgrad.tasks.style_transfer import StyleOptions
    from visgrad.tasks.texture import TextureOptions

    assert issubclass(TextureOptions, StyleOptions)
    assert TextureOptions().init == "noise" and StyleOptions().init == "content"
    fields = {f.name: f for f in dataclasses.fields(TextureOptions)}
    assert fields["init"].metadata == {f.name: f for f in dataclasses.fields(StyleOptions)}["init"].metadata
