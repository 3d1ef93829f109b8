// Signs a JWT with RS256 (a private_key_jwt client assertion) and prints
// it: OIDC_PRIVATE_JWK is the private key (a JWK, JSON; its kid goes in
// the header), OIDC_JWT_CLAIMS the payload (JSON). node:crypto only. Used
// by tests/api/oidc_harness.rs.

import { createPrivateKey, sign } from 'node:crypto';

const jwk = JSON.parse(process.env.OIDC_PRIVATE_JWK);
const claims = JSON.parse(process.env.OIDC_JWT_CLAIMS);
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const header = { alg: 'RS256', typ: 'JWT', ...(jwk.kid ? { kid: jwk.kid } : {}) };
const input = `${b64(header)}.${b64(claims)}`;
const signature = sign('sha256', Buffer.from(input), createPrivateKey({ key: jwk, format: 'jwk' }));
process.stdout.write(`${input}.${signature.toString('base64url')}\n`);
