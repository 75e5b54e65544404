// Verify an access token with jose against a remote JWKS, as a Node API would.
// Usage: node verify.mjs <jwks_uri> <issuer> <audience>   (token on stdin)
// Prints the verified payload as JSON, or {"error": "<jose error code>"} with exit code 1.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUri, issuer, audience] = process.argv.slice(2);
let token = "";
for await (const chunk of process.stdin) token += chunk;

const jwks = createRemoteJWKSet(new URL(jwksUri));
try {
  const { payload, protectedHeader } = await jwtVerify(token.trim(), jwks, { issuer, audience, algorithms: ["RS256"] });
  console.log(JSON.stringify({ payload, kid: protectedHeader.kid }));
} catch (error) {
  console.log(JSON.stringify({ error: error.code ?? error.name }));
  process.exitCode = 1;
}
