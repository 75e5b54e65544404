// An Express API protected by express-oauth2-jwt-bearer, configured as its README shows:
// issuerBaseURL (discovery, then the JWKS it names) and audience, nothing else.
// Usage: node bearer.mjs <issuerBaseURL> <audience> [<required scope>]   (token on stdin)
// Calls its own route once with the token and prints {"status": ..., "body": ...}.
import express from "express";
import { auth, requiredScopes } from "express-oauth2-jwt-bearer";

const [issuerBaseURL, audience, scope = "read:orders"] = process.argv.slice(2);
let token = "";
for await (const chunk of process.stdin) token += chunk;

const app = express();
app.get("/orders", auth({ issuerBaseURL, audience }), requiredScopes(scope), (req, res) => {
  res.json({ sub: req.auth.payload.sub, iss: req.auth.payload.iss });
});
app.use((err, req, res, next) => {
  res.status(err.status ?? 500).json({ error: err.code ?? err.name, message: err.message });
});
const server = app.listen(0, "127.0.0.1", async () => {
  const { port } = server.address();
  try {
    const response = await fetch(`http://127.0.0.1:${port}/orders`, { headers: { authorization: `Bearer ${token.trim()}` } });
    console.log(JSON.stringify({ status: response.status, body: await response.json() }));
  } finally {
    server.close();
  }
});
