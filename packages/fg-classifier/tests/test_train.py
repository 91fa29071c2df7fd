from dataclasses import replace

import jax
import numpy as np
import pytest
from fg_classifier import (
    Classifier,
    ClassifierSpec,
    TrainConfig,
    load_classifier,
    minmax_normalise,
    save_classifier,
    train,
)


def _toy(n_classes, n=1200, seed=0):
    """Separable toy spectra: each class has its own spectral slope (plus random amplitude)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    slopes = np.linspace(-2.0, 2.0, n_classes)[labels]
    nu = np.linspace(-1.0, 1.0, 17)
    amp = rng.lognormal(0.0, 1.0, (n, 2, 1))
    x = amp * (3.0 + slopes[:, None, None] * nu + 0.05 * rng.normal(size=(n, 2, 17)))
    return x, labels


@pytest.fixture(scope="module")
def spec2(instrument):
    return ClassifierSpec.for_instrument("curvature", instrument, hidden=(16, 8))


def test_paper_architectures(instrument):
    binary = Classifier.create(ClassifierSpec.for_instrument("ame", instrument))
    four = Classifier.create(ClassifierSpec.for_instrument("four", instrument, "minmax"))
    assert binary.spec.hidden == (68, 34, 17) and binary.spec.n_outputs == 1
    assert four.spec.hidden == (272, 136, 68, 34, 17) and four.spec.n_outputs == 4
    widths = [layer.kernel.shape for layer in four.model.hidden]
    assert widths == [(34, 272), (272, 136), (136, 68), (68, 34), (34, 17)]
    assert four.model.dropout.rate == 0.5
    # default inputs: the 34 sign-canonical noise-weighted shape values + log amplitude
    assert binary.spec.features == "snr" and binary.model.hidden[0].kernel.shape == (35, 68)


@pytest.mark.parametrize(
    ("task", "features", "optimizer", "lr"),
    [("curvature", "minmax", "adadelta", 1.0), ("four", "snr", "adamw", 1e-2)],
)
def test_tiny_networks_learn_toy_problem(instrument, task, features, optimizer, lr):
    n_classes = 2 if task == "curvature" else 4
    x, y = _toy(n_classes)
    spec = ClassifierSpec.for_instrument(task, instrument, features, hidden=(16, 8), dropout=0.1)
    cfg = TrainConfig(
        optimizer=optimizer, learning_rate=lr, batch_size=32, max_epochs=25, patience=25
    )
    res = train(Classifier.create(spec, seed=0), x, y, cfg)
    assert res.history["val_accuracy"][res.best_epoch - 1] > 0.95
    xt, yt = _toy(n_classes, n=400, seed=1)
    assert np.mean(np.asarray(res.classifier.predict(xt)) == yt) > 0.95
    proba = np.asarray(res.classifier.probabilities(xt))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_training_is_deterministic_and_copies(spec2):
    x, y = _toy(2, n=300)
    clf = Classifier.create(spec2, seed=0)
    before = np.asarray(clf.model.out.kernel[...]).copy()
    cfg = TrainConfig(batch_size=32, max_epochs=3)
    a = train(clf, x, y, cfg)
    b = train(clf, x, y, cfg)
    np.testing.assert_array_equal(np.asarray(clf.model.out.kernel[...]), before)
    assert a.history == b.history
    np.testing.assert_array_equal(
        np.asarray(a.classifier.model.out.kernel[...]),
        np.asarray(b.classifier.model.out.kernel[...]),
    )


def test_early_stopping(spec2):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 2, 17)), rng.integers(0, 2, 400)  # nothing to learn
    res = train(
        Classifier.create(spec2), x, y, TrainConfig(batch_size=32, max_epochs=200, patience=3)
    )
    assert res.stopped_early and res.epochs_run < 200
    assert res.epochs_run - res.best_epoch == 3


def test_save_load_roundtrip(tmp_path, instrument):
    x, y = _toy(4, n=300)
    spec = ClassifierSpec.for_instrument("four", instrument, "snr", hidden=(12, 6))
    res = train(
        Classifier.create(spec),
        x,
        y,
        TrainConfig(optimizer="adamw", learning_rate=1e-2, batch_size=32, max_epochs=2),
        checkpoint_dir=tmp_path / "ck",
    )
    back = load_classifier(tmp_path / "ck")
    assert back.spec == res.classifier.spec and back.scaling_fitted
    np.testing.assert_allclose(
        np.asarray(back.probabilities(x)), np.asarray(res.classifier.probabilities(x)), rtol=1e-12
    )
    path = save_classifier(tmp_path / "again", back)
    np.testing.assert_allclose(
        np.asarray(load_classifier(path).probabilities(x)), np.asarray(back.probabilities(x))
    )


def test_retraining_starts_from_trained_weights(spec2):
    x, y = _toy(2, n=600)
    first = train(Classifier.create(spec2), x, y, TrainConfig(batch_size=32, max_epochs=15))
    noisy = x + np.random.default_rng(3).normal(0.0, 0.3, x.shape)
    second = train(first.classifier, noisy, y, TrainConfig(batch_size=32, max_epochs=1, seed=1))
    # the first epoch of the retraining is already as good as the end of the first training
    assert second.history["val_accuracy"][0] > 0.9


def test_bad_inputs(tmp_path, spec2):
    clf = Classifier.create(replace(spec2, features="minmax"))
    with pytest.raises(ValueError, match="trained on 17 bands"):
        clf.probabilities(np.zeros((3, 2, 15)))
    with pytest.raises(ValueError, match="not min-max normalised"):
        clf.probabilities(np.ones((3, 34)) * 7.0, normalised=True)
    ok = minmax_normalise(np.random.default_rng(0).normal(size=(3, 2, 17)))
    assert clf.probabilities(ok, normalised=True).shape == (3, 2)
    with pytest.raises(FileNotFoundError, match="no classifier checkpoint"):
        load_classifier(tmp_path / "nothing")
    with pytest.raises(ValueError, match="labels must lie"):
        train(clf, np.zeros((10, 2, 17)), np.full(10, 2), TrainConfig(batch_size=2))
    with pytest.raises(ValueError, match="batch_size"):
        train(clf, np.zeros((10, 2, 17)), np.zeros(10, int), TrainConfig(batch_size=64))
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="task="):
        ClassifierSpec("dust", (1.0,), (1.0,))


def test_four_class_probabilities_are_softmax(instrument):
    clf = Classifier.create(ClassifierSpec.for_instrument("four", instrument, hidden=(8,)))
    x = np.random.default_rng(0).normal(size=(5, 2, 17))
    logits = np.asarray(clf.logits(clf.features(x)))
    ref = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(clf.probabilities(x)), ref, rtol=1e-6)
    assert jax.numpy.argmax(ref, 1).shape == (5,)
