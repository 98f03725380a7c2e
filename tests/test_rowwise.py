"""Row-wise pair losses (torch margin ranking / cosine embedding / triplet margin, Keras cosine
similarity, siamese contrastive, AITM order calibration): every backend against the float64
reference (torch's own functions where the semantics are torch's), gradients of every input,
dtypes, empty and odd shapes, non-contiguous inputs, opcheck, compile, bad inputs."""

import pytest
import torch

import fusedloss
from fusedloss import functional as F
from conftest import DEVICES, EPS, backends_for, fused_backends_for

REDUCTIONS = ("mean", "sum", "none")


def _rand(*shape, dtype=torch.float64, device="cpu", scale=1.0):
    return (torch.randn(shape, dtype=torch.float64) * scale).to(device=device, dtype=dtype)


def _pm1(n, device="cpu"):
    return (torch.randint(0, 2, (n,)) * 2 - 1).to(device=device, dtype=torch.float64)


def _case(name, n, d, dtype=torch.float64, device="cpu"):
    """(function, differentiable inputs, other args, kwargs) of one loss on fresh inputs."""
    a, b, c = (_rand(n, d, dtype=dtype, device=device) for _ in range(3))
    if name == "margin_ranking":
        return F.margin_ranking_loss, [a[:, 0].contiguous(), b[:, 0].contiguous()], [_pm1(n, device)], {"margin": 0.3}
    if name == "cosine_embedding":
        return F.cosine_embedding_loss, [a, b], [_pm1(n, device)], {"margin": 0.1}
    if name == "cosine_similarity":
        return F.cosine_similarity_loss, [a, b], [], {}
    if name == "triplet":
        return F.triplet_margin_loss, [a, b, c], [], {"margin": 1.0}
    if name == "triplet_swap_p3":
        return F.triplet_margin_loss, [a, b, c], [], {"swap": True, "p": 3.0, "margin": 2.0}
    if name == "triplet_p1":
        return F.triplet_margin_loss, [a, b, c], [], {"p": 1.0, "margin": 3.0}
    if name == "contrastive":
        y = torch.randint(0, 2, (n,), device=device)
        return F.contrastive_loss, [a, b], [y], {"margin": 1.5 * d ** 0.5}
    raise AssertionError(name)


NAMES = ("margin_ranking", "cosine_embedding", "cosine_similarity", "triplet", "triplet_swap_p3",
         "triplet_p1", "contrastive")


def _run(fn, xs, others, kw, backend, reduction, requires_grad=True):
    xs = [x.detach().clone().requires_grad_(requires_grad) for x in xs]
    out = fn(*xs, *others, reduction=reduction, backend=backend, **kw)
    if not requires_grad:
        return out, []
    grads = torch.autograd.grad(out.sum(), xs) if out.numel() else [torch.zeros_like(x) for x in xs]
    return out, grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference_fp64(device, name, reduction):
    n, d = 29, 19
    fn, xs, others, kw = _case(name, n, d, device=device)
    want, gwant = _run(fn, xs, others, kw, "reference", reduction)
    for backend in fused_backends_for(device):
        got, ggot = _run(fn, xs, others, kw, backend, reduction)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"{backend} value")
        for g, w in zip(ggot, gwant):
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11, msg=f"{backend} grad")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ("cosine_embedding", "cosine_similarity", "triplet", "contrastive",
                                  "margin_ranking"))
def test_low_precision(device, dtype, name):
    fn, xs, others, kw = _case(name, 33, 24, dtype=dtype, device=device)
    truth, gtruth = _run(fn, [x.double() for x in xs], others, kw, "reference", "mean")
    for backend in fused_backends_for(device):
        got, ggot = _run(fn, xs, others, kw, backend, "mean")
        assert got.dtype == dtype
        tol = 40 * EPS[dtype] * max(1.0, float(truth.abs()))
        assert abs(float(got) - float(truth)) <= tol, (backend, float(got), float(truth))
        for g, w in zip(ggot, gtruth):
            assert g.dtype == dtype
            scale = max(float(w.abs().max()), 1e-6)
            assert float((g.double() - w).abs().max()) <= 40 * EPS[dtype] * scale, backend


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_empty_and_single_column(device, name):
    for n, d in ((0, 5), (5, 1), (1, 1)):
        fn, xs, others, kw = _case(name, n, d, device=device)
        for reduction in REDUCTIONS:
            want = fn(*xs, *others, reduction=reduction, backend="reference", **kw)
            for backend in fused_backends_for(device):
                got = fn(*xs, *others, reduction=reduction, backend=backend, **kw)
                assert got.shape == want.shape
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_non_contiguous_and_unbatched(device, backend):
    if backend not in fused_backends_for(device):
        pytest.skip(f"backend {backend} does not run on {device} in this session")
    big = _rand(21, 40, device=device)
    a, b, c = big[:, ::2], big[:, 1::2], big.flip(0)[:, ::2]   # strided views
    y = _pm1(21, device)
    for fn, args in ((F.cosine_embedding_loss, (a, b, y)), (F.triplet_margin_loss, (a, b, c)),
                     (F.cosine_similarity_loss, (a, b)), (F.contrastive_loss, (a, b, (y > 0)))):
        torch.testing.assert_close(fn(*args, backend=backend), fn(*args, backend="reference"))
    one = _rand(7, device=device)
    two = _rand(7, device=device)
    torch.testing.assert_close(F.triplet_margin_loss(one, two, -one, backend=backend),
                               F.triplet_margin_loss(one, two, -one, backend="reference"))
    t = torch.tensor(-1.0, dtype=torch.float64, device=device)
    torch.testing.assert_close(F.cosine_embedding_loss(one, two, t, margin=-0.5, backend=backend),
                               F.cosine_embedding_loss(one, two, t, margin=-0.5, backend="reference"))
    # margin ranking on a non-contiguous 2-D shape, reduction none keeps the shape
    x1, x2 = big[:, :6].t(), big[:, 6:12].t()
    y2 = torch.sign(_rand(6, 21, device=device))
    got = F.margin_ranking_loss(x1, x2, y2, 0.2, "none", backend=backend)
    assert got.shape == x1.shape
    torch.testing.assert_close(got, F.margin_ranking_loss(x1, x2, y2, 0.2, "none", backend="reference"))


@pytest.mark.parametrize("device", DEVICES)
def test_edge_rows(device):
    """A zero row (cosine: the norm clamp), identical rows (contrastive distance eps only), cosine
    targets other than +-1 (loss 0), and a margin-ranking tie at exactly 0 (torch's >= rule)."""
    a = _rand(6, 8, device=device)
    b = _rand(6, 8, device=device)
    a[0] = 0.0
    b[1] = a[1]
    y = torch.tensor([1.0, -1.0, 0.0, 1.0, -1.0, 2.0], dtype=torch.float64, device=device)
    for backend in backends_for(device):
        for fn, args in ((F.cosine_similarity_loss, (a, b)), (F.cosine_embedding_loss, (a, b, y)),
                         (F.contrastive_loss, (a, b, (y > 0).double()))):
            xs = [a.clone().requires_grad_(), b.clone().requires_grad_()]
            out = fn(*xs, *args[2:], backend=backend)
            ref_xs = [a.clone().requires_grad_(), b.clone().requires_grad_()]
            ref = fn(*ref_xs, *args[2:], backend="reference")
            torch.testing.assert_close(out, ref)
            for g, w in zip(torch.autograd.grad(out, xs), torch.autograd.grad(ref, ref_xs)):
                torch.testing.assert_close(g, w)
    x1 = torch.tensor([1.0, 2.0], dtype=torch.float64, device=device, requires_grad=True)
    x2 = torch.tensor([1.5, 2.5], dtype=torch.float64, device=device)
    t = torch.tensor([1.0, -1.0], dtype=torch.float64, device=device)
    for backend in fused_backends_for(device):
        g_ours, = torch.autograd.grad(F.margin_ranking_loss(x1, x2, t, 0.5, "sum", backend=backend), x1)
        g_ref, = torch.autograd.grad(F.margin_ranking_loss(x1, x2, t, 0.5, "sum", backend="reference"), x1)
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("device", DEVICES)
def test_order_calibrate(device):
    pt = torch.rand(40, 3, dtype=torch.float64, device=device)
    rels = [torch.rand(40, 3, dtype=torch.float64, device=device) for _ in range(2)]
    pt[0, 0] = rels[0][0, 0]  # a tie: relu's gradient is 0 there (TF and torch)
    want = None
    for backend in backends_for(device):
        xs = [pt.clone().requires_grad_()] + [r.clone().requires_grad_() for r in rels]
        out = F.order_calibrate_loss(xs[0], xs[1:], weight=0.7, backend=backend)
        grads = torch.autograd.grad(out, xs)
        if want is None:
            want = (out, grads)
            manual = 0.7 * sum(torch.relu(pt - r).mean() for r in rels)
            torch.testing.assert_close(out, manual)
        else:
            torch.testing.assert_close(out, want[0])
            for g, w in zip(grads, want[1]):
                torch.testing.assert_close(g, w)
        assert float(grads[1].abs().sum()) > 0   # the upstream tower is trained too
    assert float(F.order_calibrate_loss(pt, [])) == 0.0


def test_gradcheck_cpu():
    for name in NAMES:
        fn, xs, others, kw = _case(name, 5, 3)
        xs = [x.requires_grad_() for x in xs]
        torch.autograd.gradcheck(lambda *v: fn(*v, *others, backend="cpu", **kw), xs)


def test_nn_modules_match_torch():
    a, b, c = (_rand(9, 6) for _ in range(3))
    y = _pm1(9)
    n = fusedloss.nn
    torch.testing.assert_close(n.MarginRankingLoss(0.2)(a[:, 0], b[:, 0], y),
                               torch.nn.MarginRankingLoss(0.2)(a[:, 0], b[:, 0], y))
    torch.testing.assert_close(n.CosineEmbeddingLoss(0.1, "sum")(a, b, y),
                               torch.nn.CosineEmbeddingLoss(0.1, reduction="sum")(a, b, y))
    torch.testing.assert_close(n.TripletMarginLoss(0.5, 1.0, swap=True)(a, b, c),
                               torch.nn.TripletMarginLoss(0.5, 1.0, swap=True)(a, b, c))
    torch.testing.assert_close(n.CosineSimilarityLoss()(a, b),
                               -torch.nn.functional.cosine_similarity(a, b, eps=1e-12).mean())
    yb = (y > 0).double()
    d = torch.nn.functional.pairwise_distance(a, b)
    want = (yb * d ** 2 + (1 - yb) * (2.0 - d).clamp(min=0) ** 2).mean()
    torch.testing.assert_close(n.ContrastiveLoss(2.0)(a, b, yb), want)


def _raw_args(kind, n=6, d=4, dtype=torch.float64, requires_grad=True, c=False, target=True):
    a, b = _rand(n, d, dtype=dtype).requires_grad_(requires_grad), _rand(n, d, dtype=dtype)
    cc = _rand(n, d, dtype=dtype) if c else None
    t = _pm1(n).to(torch.float64 if dtype == torch.float64 else torch.float32) if target else None
    return (a, b, cc, t, kind, 0.1, 2.0, 1e-6, False, 2, requires_grad)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_opcheck(backend):
    if backend not in fused_backends_for("cpu"):
        pytest.skip(f"backend {backend} does not run on cpu in this session")
    op = torch.ops.fusedloss.rowwise_fwd if backend == "cpu" else torch.ops.fusedloss.rowwise_fwd_triton
    torch.library.opcheck(op, _raw_args(2))
    torch.library.opcheck(op, _raw_args(4, c=True, target=False))
    torch.library.opcheck(op, _raw_args(0, d=1, dtype=torch.float32))
    torch.library.opcheck(op, _raw_args(3, dtype=torch.float16, target=False, requires_grad=False))


def test_compile_fullgraph():
    a, b, c = (_rand(8, 5) for _ in range(3))
    y = _pm1(8)

    def f(a, b, c, y):
        return (F.triplet_margin_loss(a, b, c, backend="cpu")
                + F.cosine_embedding_loss(a, b, y, backend="cpu")
                + F.margin_ranking_loss(a[:, 0], b[:, 0], y, backend="cpu"))

    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(a, b, c, y)
    torch.testing.assert_close(got, f(a, b, c, y))


def test_bad_inputs():
    a, b = _rand(5, 3), _rand(5, 3)
    y = _pm1(5)
    with pytest.raises(ValueError, match="input2 must have input1's shape"):
        F.cosine_embedding_loss(a, b[:4], y)
    with pytest.raises(TypeError, match="input2 must have input1's dtype"):
        F.contrastive_loss(a, b.float(), y)
    with pytest.raises(ValueError, match=r"target must have shape \(5,\)"):
        F.cosine_embedding_loss(a, b, y[:3])
    with pytest.raises(ValueError, match="p must be in"):
        F.triplet_margin_loss(a, b, a, p=0.5)
    with pytest.raises(ValueError, match="eps must be in"):
        F.triplet_margin_loss(a, b, a, eps=-1.0)
    with pytest.raises(TypeError, match="swap must be a bool"):
        F.triplet_margin_loss(a, b, a, swap=1)
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cosine_similarity_loss(a, b, reduction="batchmean")
    with pytest.raises(TypeError, match="y_pred must be float16"):
        F.cosine_similarity_loss(a.long(), b)
    with pytest.raises(ValueError, match="anchor must be"):
        F.triplet_margin_loss(a[None], b[None], a[None])
    with pytest.raises(TypeError, match="relation_probs must be a tensor or a list"):
        F.order_calibrate_loss(a, 3)
    with pytest.raises(ValueError, match="backend must be one of"):
        F.contrastive_loss(a, b, y, backend="gpu")
