// SPDX-License-Identifier: Apache-2.0
// A 6-decimal ERC20 with mainnet USDC's storage layout (FiatTokenV1: balances at slot 9, allowances at 10,
// totalSupply at 11), so tools that write balances by slot behave the same on the replica and on a fork.
// Compiled offline by solc-js from node_modules at replica setup; never committed as bytecode.
pragma solidity 0.8.26;

contract ReplicaUSDC {
    address public owner;            // slot 0
    address public pauser;           // slot 1 (packed with `paused`)
    bool public paused;
    address public blacklister;      // slot 2
    mapping(address => bool) internal blacklisted; // slot 3
    string public name;              // slot 4
    string public symbol;            // slot 5
    uint8 public decimals;           // slot 6
    string public currency;          // slot 7
    address public masterMinter;     // slot 8 (packed with `initialized`)
    bool internal initialized;
    mapping(address => uint256) internal balances;                      // slot 9
    mapping(address => mapping(address => uint256)) internal allowed;   // slot 10
    uint256 internal totalSupply_;   // slot 11

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Mint(address indexed minter, address indexed to, uint256 amount);

    constructor() {
        owner = msg.sender;
        masterMinter = msg.sender;
        name = "USD Coin";
        symbol = "USDC";
        decimals = 6;
        currency = "USD";
        initialized = true;
    }

    function totalSupply() external view returns (uint256) { return totalSupply_; }
    function balanceOf(address account) external view returns (uint256) { return balances[account]; }
    function allowance(address holder, address spender) external view returns (uint256) { return allowed[holder][spender]; }

    function approve(address spender, uint256 value) external returns (bool) {
        allowed[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        require(value <= allowed[from][msg.sender], "ERC20: transfer amount exceeds allowance");
        allowed[from][msg.sender] -= value;
        _transfer(from, to, value);
        return true;
    }

    function mint(address to, uint256 amount) external returns (bool) {
        require(msg.sender == masterMinter, "FiatToken: caller is not a minter");
        totalSupply_ += amount;
        balances[to] += amount;
        emit Mint(msg.sender, to, amount);
        emit Transfer(address(0), to, amount);
        return true;
    }

    function _transfer(address from, address to, uint256 value) internal {
        require(to != address(0), "ERC20: transfer to the zero address");
        require(value <= balances[from], "ERC20: transfer amount exceeds balance");
        balances[from] -= value;
        balances[to] += value;
        emit Transfer(from, to, value);
    }
}
