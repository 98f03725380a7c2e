"""Train a tiny ranking model on synthetic sessions with an EasyRec multi-loss config.

Each session is one user looking at a few items; a click is drawn from a hidden user-item affinity.
The model (user and item embeddings, then an MLP, one logit per item) is trained with

* CLASSIFICATION (pointwise click CE),
* PAIRWISE_LOGISTIC_LOSS within each session (``session_name: user_id``),
* SIGMOID_L2_LOSS (Brier score; the regression form of the uncertainty weighting),

combined by ``loss_weight_strategy: Uncertainty`` with a learned weight per loss. It prints the loss
curve (mean unweighted loss per term over each interval, and the total), the held-out session AUC,
and the learned weights ``u_k`` with the factor each one puts on its loss.

    python examples/train_ranking.py [--steps 300] [--batch 256] [--device cpu] [--threads 1]
"""

import argparse
import time

import torch

import fusedloss

CONFIG = """
loss_weight_strategy: Uncertainty
losses:
  - loss_type: CLASSIFICATION
    learn_loss_weight: true
  - loss_type: PAIRWISE_LOGISTIC_LOSS
    learn_loss_weight: true
    pairwise_logistic_loss:
      session_name: user_id
      temperature: 1.0
  - loss_type: SIGMOID_L2_LOSS
    learn_loss_weight: true
"""

NUM_USERS, NUM_ITEMS, TRUE_DIM, SESSION = 500, 1000, 8, 8


class World:
    """Hidden user and item vectors; a session is a user and SESSION random items."""

    def __init__(self, generator):
        self.g = generator
        self.user = torch.randn(NUM_USERS, TRUE_DIM, generator=generator)
        self.item = torch.randn(NUM_ITEMS, TRUE_DIM, generator=generator)
        self.item_bias = torch.randn(NUM_ITEMS, generator=generator)

    def batch(self, batch_size, device):
        sessions = max(batch_size // SESSION, 2)
        users = torch.randint(0, NUM_USERS, (sessions,), generator=self.g).repeat_interleave(SESSION)
        items = torch.randint(0, NUM_ITEMS, (sessions * SESSION,), generator=self.g)
        dot = (self.user[users] * self.item[items]).sum(1) / TRUE_DIM ** 0.5
        affinity = dot + self.item_bias[items] - 1.0
        clicks = torch.bernoulli(torch.sigmoid(2.0 * affinity), generator=self.g)
        return users.to(device), items.to(device), clicks.to(device)


class Ranker(torch.nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.user = torch.nn.Embedding(NUM_USERS, dim)
        self.item = torch.nn.Embedding(NUM_ITEMS, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(3 * dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

    def forward(self, users, items):
        u, v = self.user(users), self.item(items)
        return self.mlp(torch.cat([u, v, u * v], dim=1))  # [B, 1], as EasyRec's rank head


def session_auc(logits, clicks, sessions):
    """Mean over sessions with both a click and a non-click of the fraction of ordered pairs."""
    same = sessions[:, None] == sessions[None, :]
    pos_neg = same & (clicks[:, None] > clicks[None, :])
    wins = ((logits[:, None] > logits[None, :]).float() + 0.5 * (logits[:, None] == logits[None, :]).float())
    per_session = torch.zeros(NUM_USERS, device=logits.device).index_add_(
        0, sessions, (wins * pos_neg).sum(1))
    pairs = torch.zeros(NUM_USERS, device=logits.device).index_add_(0, sessions, pos_neg.sum(1).float())
    ok = pairs > 0
    return (per_session[ok] / pairs[ok]).mean().item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256, help="items per step (sessions of %d)" % SESSION)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--print-every", type=int, default=0, help="default: steps / 10")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads; 1 suits a model this small (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    every = args.print_every or max(args.steps // 10, 1)

    torch.manual_seed(0)
    world = World(torch.Generator().manual_seed(0))
    model = Ranker().to(device)
    loss_fn = fusedloss.build_loss(CONFIG).to(device)
    optimizer = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=args.lr)
    eval_users, eval_items, eval_clicks = world.batch(4096, device)

    names = loss_fn.names
    print(f"{'step':>5}  {'total':>8}  " + "  ".join(f"{n:>22}" for n in names))
    sums, count, start = None, 0, time.perf_counter()
    for step in range(1, args.steps + 1):
        users, items, clicks = world.batch(args.batch, device)
        logits = model(users, items)
        values = loss_fn.compute(logits, clicks, features={"user_id": users})
        total = loss_fn.combine(values)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

        row = torch.stack([total.detach()] + [values[n].detach() for n in names]).cpu()
        sums = row if sums is None else sums + row
        count += 1
        if step % every == 0 or step == args.steps:
            mean = (sums / count).tolist()
            print(f"{step:>5}  {mean[0]:>8.4f}  " + "  ".join(f"{v:>22.4f}" for v in mean[1:]), flush=True)
            sums, count = None, 0

    with torch.no_grad():
        auc = session_auc(model(eval_users, eval_items).reshape(-1), eval_clicks, eval_users)
    print(f"held-out session AUC {auc:.4f}  ({time.perf_counter() - start:.1f} s)")
    print("learned weights (u, factor on its loss):")
    for term in loss_fn.terms:
        u = loss_fn.uncertainties[term.name].item()
        factor = (0.5 if term.regression else 1.0) * torch.exp(torch.tensor(-u)).item()
        print(f"  {term.name:>22}  u = {u:+.4f}  factor = {factor:.4f}")


if __name__ == "__main__":
    main()
