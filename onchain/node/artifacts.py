"""Where the real binaries and contract artifacts come from: the pinned npm packages (`npm ci`).

Nothing here is committed bytecode: ABIs and creation code are read from node_modules, and the one contract
we compile ourselves (the replica's USDC-layout token) is built by solc-js and cached under trader_home().
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from trader_core.errors import ChainError, DependencyMissing
from trader_core.paths import atomic_write_text, trader_home

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_HINT = "run `npm ci` in the repository root (or `make setup`)"

# name -> (npm package, path inside it). Hardhat artifacts carry "bytecode"; waffle builds carry "bytecode"/"evm".
ARTIFACTS: dict[str, tuple[str, str]] = {
    "WETH9": ("canonical-weth", "build/contracts/WETH9.json"),
    "UniswapV2Factory": ("@uniswap/v2-core", "build/UniswapV2Factory.json"),
    "UniswapV2Pair": ("@uniswap/v2-core", "build/UniswapV2Pair.json"),
    "UniswapV2Router02": ("@uniswap/v2-periphery", "build/UniswapV2Router02.json"),
    "UniswapV3Factory": ("@uniswap/v3-core", "artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"),
    "UniswapV3Pool": ("@uniswap/v3-core", "artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json"),
    "SwapRouter": ("@uniswap/v3-periphery", "artifacts/contracts/SwapRouter.sol/SwapRouter.json"),
    "QuoterV2": ("@uniswap/v3-periphery", "artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json"),
    "NonfungiblePositionManager": (
        "@uniswap/v3-periphery",
        "artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
    ),
    # periphery real clients call (both replicas) and Uniswap V4 (the Base replica); foundry builds carry
    # {"bytecode": {"object": ...}}
    "QuoterV1": ("@uniswap/v3-periphery", "artifacts/contracts/lens/Quoter.sol/Quoter.json"),
    "SwapRouter02": ("@uniswap/swap-router-contracts", "artifacts/contracts/SwapRouter02.sol/SwapRouter02.json"),
    "UniversalRouter": ("@uniswap/universal-router", "artifacts/contracts/UniversalRouter.sol/UniversalRouter.json"),
    "PoolManager": ("@uniswap/v4-core", "out/PoolManager.sol/PoolManager.json"),
    "PositionManager": ("@uniswap/v4-periphery", "foundry-out/PositionManager.sol/PositionManager.json"),
    "StateView": ("@uniswap/v4-periphery", "foundry-out/StateView.sol/StateView.json"),
    "V4Quoter": ("@uniswap/v4-periphery", "foundry-out/V4Quoter.sol/V4Quoter.json"),
}


def node_modules() -> Path:
    """The node_modules folder holding the pinned packages: $TRADER_NODE_MODULES, the repo's, or the cwd's."""
    candidates = [os.environ.get("TRADER_NODE_MODULES"), REPO_ROOT / "node_modules", Path.cwd() / "node_modules"]
    for c in candidates:
        if c and (Path(c) / "@uniswap").is_dir():
            return Path(c)
    raise DependencyMissing(f"the Uniswap/anvil npm packages are not installed; {NPM_HINT}")


def find_anvil() -> str:
    """$ANVIL_BIN, the npm package, PATH, ~/.foundry/bin/anvil — first that exists wins."""
    env = os.environ.get("ANVIL_BIN")
    if env:
        if Path(env).is_file():
            return env
        raise DependencyMissing(f"ANVIL_BIN={env} does not exist; unset it or point it at an anvil binary")
    for root in (REPO_ROOT / "node_modules", Path.cwd() / "node_modules"):
        path = root / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
        if path.is_file():
            return str(path)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    foundry = Path.home() / ".foundry" / "bin" / "anvil"
    if foundry.is_file():
        return str(foundry)
    raise DependencyMissing(
        f"anvil not found; {NPM_HINT} (installs @foundry-rs/anvil-linux-amd64), or install Foundry, or set ANVIL_BIN"
    )


@functools.lru_cache(maxsize=None)
def load_artifact(name: str) -> dict:
    """{'abi': [...], 'bytecode': '0x...'} for a contract named in ARTIFACTS (or the compiled replica token)."""
    if name == "ReplicaUSDC":
        return compile_replica_usdc()
    if name not in ARTIFACTS:
        raise ChainError(f"unknown contract artifact {name!r}; known: {', '.join(sorted(ARTIFACTS))}")
    package, rel = ARTIFACTS[name]
    path = node_modules() / package / rel
    if not path.exists():
        raise DependencyMissing(f"{package} is missing {rel}; {NPM_HINT}")
    data = json.loads(path.read_text())
    code = data.get("bytecode") or data.get("evm", {}).get("bytecode", {}).get("object", "")
    if isinstance(code, dict):
        code = code.get("object", "")
    if not code.startswith("0x"):
        code = "0x" + code
    return {"abi": data["abi"], "bytecode": code}


def abi(name: str) -> list:
    return load_artifact(name)["abi"]


_SOLC_SCRIPT = r"""
const solc = require('solc');
const fs = require('fs');
const src = fs.readFileSync(process.argv[1], 'utf8');
const input = {language: 'Solidity', sources: {'ReplicaUSDC.sol': {content: src}},
  settings: {optimizer: {enabled: true, runs: 200}, evmVersion: 'paris',
             outputSelection: {'*': {'*': ['abi', 'evm.bytecode.object']}}}};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errs = (out.errors || []).filter(e => e.severity === 'error');
if (errs.length) { console.error(errs.map(e => e.formattedMessage).join('\n')); process.exit(1); }
const c = out.contracts['ReplicaUSDC.sol']['ReplicaUSDC'];
process.stdout.write(JSON.stringify({abi: c.abi, bytecode: '0x' + c.evm.bytecode.object}));
"""


def compile_replica_usdc() -> dict:
    """Compile onchain/contracts/ReplicaUSDC.sol with the pinned solc-js; cached by source hash."""
    source = Path(__file__).parents[1] / "contracts" / "ReplicaUSDC.sol"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cache = trader_home() / "cache" / f"ReplicaUSDC-{digest}.json"
    if cache.exists():
        try:
            return json.loads(cache.read_text())
        except (ValueError, OSError):
            pass  # a damaged cache is rebuilt

    modules = node_modules()
    if not (modules / "solc").is_dir():
        raise DependencyMissing(f"solc-js is not installed; {NPM_HINT}")
    node = shutil.which("node")
    if node is None:
        raise DependencyMissing("node is not installed; install Node.js >= 18 to compile the replica token")
    proc = subprocess.run(
        [node, "-e", _SOLC_SCRIPT, str(source)], capture_output=True, text=True, timeout=300,
        # a clean environment: the compiler needs no keys or RPC URLs
        env={**{k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ},
             "NODE_PATH": str(modules)},
    )
    if proc.returncode != 0:
        raise ChainError(f"compiling ReplicaUSDC.sol failed: {proc.stderr.strip().splitlines()[-1:]}")
    atomic_write_text(cache, proc.stdout)
    return json.loads(proc.stdout)
