"""The dashboard's live reads, over the same `ToolSession` the CLI's commands and the agent's tools use: price,
portfolio, the journal and the equity curve (polled), the policy's signal with its ensemble's vote and the
observation it saw, the pool's recent swaps with our fills marked, and the trader model's explanation (on demand:
loading a model takes seconds to minutes).

Two tool sessions, each behind its own lock (a chain client and a policy serve one request at a time): the polled
state never waits for the policy to load or the trader model to answer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import BaseModel

from agent.dashboard.ledger import (EquityCurve, JournalRow, equity_curve, execution_summary, journal_rows,
                                    wallet_rows)
from trader_core.redact import scrub
from agent.turn.tools import ToolSession
from trader_core.errors import TraderError


class StateView(BaseModel):
    """What the page polls: market, wallet, journal, equity. Errors are one line each, scrubbed of URLs and keys."""

    time: float
    chain: bool
    chain_error: str | None = None
    network: str | None = None
    block: int | None = None
    price: float | None = None
    venue: str | None = None
    portfolio: dict[str, Any] | None = None
    journal: list[JournalRow] = []
    journal_error: str | None = None
    execution: str = ""
    equity: EquityCurve | None = None
    version: str = ""  # changes when anything shown changes (the page redraws only then)


class Vote(BaseModel):
    member: int
    action: str


class SignalView(BaseModel):
    signal: dict[str, Any] | None = None
    error: str | None = None
    # when the live bars do not cover the look-back yet (a fresh chain): the policy's latest full view, on its own
    # history's last bar, as the trader model is asked about it (agent.turn.tools); the vote and observation are its
    full_view: dict[str, Any] | None = None
    votes: list[Vote] = []
    action_names: list[str] = []
    prices: list[list[float]] = []  # [time, price] of the pool's recent swaps, or the policy's history
    price_source: str = ""
    fills: list[dict[str, Any]] = []  # our swaps on that chart: time, price, side, tx


class LiveData:
    def __init__(self, rpc_url: str | None = None, policy: str = "default", trader_llm: str = "auto"):
        def session():
            return ToolSession(rpc_url=rpc_url, policy=policy, trader_llm=trader_llm, notify=lambda line: None)

        self.tools, self.lock = session(), threading.Lock()  # price, portfolio, journal, equity
        self.policy_tools, self.policy_lock = session(), threading.Lock()  # signal, chart, explanation

    def _journal(self) -> list[dict[str, Any]]:
        from onchain.api import Journal

        journal = Journal(readonly=True) if _journal_exists() else None
        if journal is None:
            return []
        try:
            return journal.list_trades(limit=2000)
        finally:
            journal.close()

    def state(self) -> StateView:
        with self.lock:
            return self._state()

    def _state(self) -> StateView:
        now = time.time()
        view = StateView(time=now, chain=False)
        try:
            rows = self._journal()
        except TraderError as exc:
            rows, view.journal_error = [], scrub(str(exc))
        view.journal = journal_rows(rows)
        view.execution = execution_summary(rows)
        price = self.tools.call("get_price")
        if price.ok:
            chain = self.tools.chain
            pf = self.tools.call("get_portfolio")
            view.chain, view.price, view.venue = True, price.value.price, price.value.venue
            view.block = price.value.block
            from onchain.networks import network_of
            from onchain.venues.v2_v3 import FEE_BPS

            view.network = network_of(chain).name
            if pf.ok:
                p = pf.value
                view.portfolio = {"address": p.address, "eth": p.eth, "weth": p.weth, "usdc": p.usdc,
                                  "value_usd": (p.eth + p.weth) * price.value.price + p.usdc}
                mine = wallet_rows(rows, p.address, chain.node_id)
                view.equity = equity_curve(mine, p.eth + p.weth, p.usdc, price.value.price, now, FEE_BPS)
            else:
                view.chain_error = pf.error
        else:
            view.chain_error = price.error
        statuses = hash(tuple((r["id"], r["status"]) for r in rows))
        view.version = f"{view.block}:{statuses}:{view.price}:{view.portfolio and view.portfolio['value_usd']}"
        return view

    def signal(self) -> SignalView:
        with self.policy_lock:
            return self._signal()

    def _signal(self) -> SignalView:
        out = SignalView()
        call = self.policy_tools.call("get_rl_signal")
        if not call.ok:
            out.error = call.error
            return out
        view = call.value
        out.signal = view.model_dump(mode="json")
        policy = self.policy_tools.policy
        out.action_names = list(policy.action_names)
        if not view.observation and view.live_bars:
            from agent.market import policy_signal

            view = policy_signal(policy, self.policy_tools.history.read(), view.position, view.wallet)
            out.full_view = view.model_dump(mode="json")
        if view.observation and len(view.observation) == len(policy.observation_names):
            import numpy as np

            obs = np.array([view.observation[n] for n in policy.observation_names], dtype=np.float32)
            try:
                votes = policy.decide(obs).votes
                out.votes = [Vote(member=i, action=policy.action_names[v]) for i, v in enumerate(votes)]
            except Exception:  # the vote is shown when it can be computed; the signal itself already holds
                out.votes = []
        self._prices(out)
        return out

    def _prices(self, out: SignalView) -> None:
        """The pool's recent swaps (post-swap mid price) with our own fills picked out by tx hash; without a chain,
        the policy's last week of history."""
        tools = self.policy_tools
        if tools.chain_up():
            from onchain.api import get_price, recent_swaps

            chain = tools.chain
            try:
                venue = get_price(chain).venue
                events = recent_swaps(chain, venue=venue, blocks=20_000)
            except TraderError as exc:
                out.price_source = f"pool swaps unavailable: {scrub(str(exc))}"
                return
            ours = {r["tx_hash"]: r for r in self._journal() if r.get("tx_hash") and r["status"] == "confirmed"}
            out.prices = [[float(e.timestamp), float(e.price)] for e in events]
            out.price_source = f"{venue} pool swaps, last 20,000 blocks"
            for e in events:
                r = ours.get(e.tx_hash)
                if r:
                    out.fills.append({"time": float(e.timestamp), "price": float(e.price), "side": r["side"],
                                      "tx_hash": e.tx_hash, "id": r["id"]})
            now = chain.block_timestamp()
            out.prices.append([float(now), float(get_price(chain).price)])
            return
        snapshot = tools.history.read()
        candles, n = snapshot.candles, min(len(snapshot.candles), 168)
        out.prices = [[float(t), float(c)] for t, c in zip(candles.timestamps[-n:], candles.close[-n:])]
        out.price_source = f"{snapshot.source}: no chain answers"

    def explain(self) -> dict[str, Any]:
        """The trader model's opinion on the policy's latest view (loads the model on first use)."""
        with self.policy_lock:
            call = self.policy_tools.call("ask_trader_model")
        if not call.ok:
            return {"error": call.error}
        return call.result


def _journal_exists() -> bool:
    from onchain.execution.journal import journal_path

    return journal_path().exists()
