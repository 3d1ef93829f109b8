// Prints a new RS256 client key pair for private_key_jwt tests, as JSON:
// {"private_jwk": {...}, "public_jwk": {...}} (same kid, alg RS256, use sig).
// node:crypto only. Used by tests/api/oidc_harness.rs.

import { generateKeyPairSync, randomBytes } from 'node:crypto';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const meta = { kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
process.stdout.write(`${JSON.stringify({
  private_jwk: { ...privateKey.export({ format: 'jwk' }), ...meta },
  public_jwk: { ...publicKey.export({ format: 'jwk' }), ...meta },
})}\n`);
