// An independent check of mergenet's reward proofs with OpenZeppelin's @openzeppelin/merkle-tree.
//
// Reads JSON from stdin: {"root": "0x…" (read from the chain), "claims": [{"account": "0x…",
// "cumulative": "<base units>", "proof": ["0x…", …]}, …]} (each claim as GET
// /api/rewards/{address} serves it). The leaf is computed here, not taken from mergenet:
// keccak256(abi.encodePacked(address, uint256)) as the distributor contract computes it, with
// keccak from ethereum-cryptography (the library OpenZeppelin's tree itself hashes with); the
// proof is checked by SimpleMerkleTree.verify (sorted-pair keccak, as OpenZeppelin's
// MerkleProof.sol). Prints {"results": [true|false, …]}; exits 1 if any proof fails.
import { SimpleMerkleTree } from "@openzeppelin/merkle-tree";
import { keccak256 } from "ethereum-cryptography/keccak.js";
import { hexToBytes, bytesToHex } from "ethereum-cryptography/utils.js";

function packedLeaf(account, cumulative) {
  const address = hexToBytes(account.toLowerCase().replace(/^0x/, ""));
  if (address.length !== 20) throw new Error(`not a 20-byte address: ${account}`);
  const amount = BigInt(cumulative);
  if (amount < 0n || amount >= 2n ** 256n) throw new Error(`amount out of range: ${cumulative}`);
  const word = hexToBytes(amount.toString(16).padStart(64, "0"));
  const packed = new Uint8Array(52);
  packed.set(address, 0);
  packed.set(word, 20);
  return "0x" + bytesToHex(keccak256(packed));
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const { root, claims } = JSON.parse(input);
const results = claims.map((c) =>
  SimpleMerkleTree.verify(root, packedLeaf(c.account, c.cumulative), c.proof),
);
process.stdout.write(JSON.stringify({ results }) + "\n");
process.exit(results.every(Boolean) ? 0 : 1);
