// A third-party client against a replica, unchanged: viem (what wallets and dapps use) with its own built-in
// chain definitions, so Multicall3 is found at the address viem knows for mainnet / Base, not one we pass.
// Usage: node viem_client.mjs <rpc-url> mainnet|base  -> one JSON object on stdout.
import { createPublicClient, createWalletClient, http, parseAbi, parseEther } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { base, mainnet } from 'viem/chains';

const [rpc, network] = process.argv.slice(2);
const chain = network === 'base' ? base : mainnet;
const client = createPublicClient({ chain, transport: http(rpc) });
const big = (_, v) => (typeof v === 'bigint' ? v.toString() : v);
const out = { chainId: await client.getChainId(), multicall3: chain.contracts.multicall3.address };

if (network === 'base') {
  const poolId = '0x96d4b53a38337a5733179751781178a2613306063c511b78cd02684739288c0a';
  const key = { currency0: '0x0000000000000000000000000000000000000000',
    currency1: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913', fee: 500, tickSpacing: 10,
    hooks: '0x0000000000000000000000000000000000000000' };
  const stateView = { address: '0xA3c0c9b65baD0b08107Aa264b0f3dB444b867A71', abi: parseAbi([
    'function getSlot0(bytes32) view returns (uint160 sqrtPriceX96, int24 tick, uint24 protocolFee, uint24 lpFee)',
    'function getLiquidity(bytes32) view returns (uint128)']) };
  const [slot0, liquidity] = await client.multicall({ allowFailure: false, contracts: [
    { ...stateView, functionName: 'getSlot0', args: [poolId] },
    { ...stateView, functionName: 'getLiquidity', args: [poolId] }] });
  const quoter = parseAbi(['struct PoolKey { address currency0; address currency1; uint24 fee; int24 tickSpacing; address hooks; }',
    'struct QuoteExactSingleParams { PoolKey poolKey; bool zeroForOne; uint128 exactAmount; bytes hookData; }',
    'function quoteExactInputSingle(QuoteExactSingleParams params) returns (uint256 amountOut, uint256 gasEstimate)']);
  const { result } = await client.simulateContract({ address: '0x0d5e0F971ED27FBfF6c2837bf31316121532048D',
    abi: quoter, functionName: 'quoteExactInputSingle',
    args: [{ poolKey: key, zeroForOne: true, exactAmount: parseEther('1'), hookData: '0x' }] });
  Object.assign(out, { sqrtPriceX96: slot0[0], tick: slot0[1], liquidity, v4QuoteOneEth: result[0] });
} else {
  const usdc = '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48';
  const weth = '0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2';
  const erc20 = parseAbi(['function balanceOf(address) view returns (uint256)', 'function decimals() view returns (uint8)']);
  const [reserves, slot0, decimals] = await client.multicall({ allowFailure: false, contracts: [
    { address: '0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc', abi: parseAbi(['function getReserves() view returns (uint112, uint112, uint32)']), functionName: 'getReserves' },
    { address: '0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640', abi: parseAbi(['function slot0() view returns (uint160, int24, uint16, uint16, uint16, uint8, bool)']), functionName: 'slot0' },
    { address: usdc, abi: erc20, functionName: 'decimals' }] });
  // QuoterV1: the quoter SDKs and older libraries call
  const { result: quoted } = await client.simulateContract({ address: '0xb27308f9F90D607463bb33eA1BeBb41C27CE5AB6',
    abi: parseAbi(['function quoteExactInputSingle(address tokenIn, address tokenOut, uint24 fee, uint256 amountIn, uint160 sqrtPriceLimitX96) returns (uint256 amountOut)']),
    functionName: 'quoteExactInputSingle', args: [weth, usdc, 500, parseEther('1'), 0n] });
  // SwapRouter02: sell 1 ETH on the 0.05% pool from anvil dev account 5, as a wallet would
  const account = mnemonicToAccount('test test test test test test test test test test test junk', { addressIndex: 5 });
  const wallet = createWalletClient({ account, chain, transport: http(rpc) });
  const before = await client.readContract({ address: usdc, abi: erc20, functionName: 'balanceOf', args: [account.address] });
  const router = parseAbi(['struct ExactInputSingleParams { address tokenIn; address tokenOut; uint24 fee; address recipient; uint256 amountIn; uint256 amountOutMinimum; uint160 sqrtPriceLimitX96; }',
    'function exactInputSingle(ExactInputSingleParams params) payable returns (uint256 amountOut)']);
  const { request } = await client.simulateContract({ account, address: '0x68b3465833fb72A70ecDF485E0e4C7bD8665Fc45',
    abi: router, functionName: 'exactInputSingle', value: parseEther('1'),
    args: [{ tokenIn: weth, tokenOut: usdc, fee: 500, recipient: account.address, amountIn: parseEther('1'),
      amountOutMinimum: quoted * 995n / 1000n, sqrtPriceLimitX96: 0n }] });
  const hash = await wallet.writeContract(request);
  const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  const after = await client.readContract({ address: usdc, abi: erc20, functionName: 'balanceOf', args: [account.address] });
  Object.assign(out, { v2Reserves: [reserves[0], reserves[1]], v3SqrtPriceX96: slot0[0], usdcDecimals: decimals,
    quoterV1OneEth: quoted, swapRouter02Status: receipt.status, swapRouter02UsdcReceived: after - before });
}
process.stdout.write(JSON.stringify(out, big));
