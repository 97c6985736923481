// A _search and an _msearch through an official JavaScript client, for
// tests/sidecar/test_official_clients.py. One process run does both searches.
//
//   node search.mjs '{"client": "elasticsearch8" | "elasticsearch9" | "opensearch",
//                     "url": "http://127.0.0.1:9280", "index": "catalog-clients",
//                     "search": {"query": {...}, "size": 5},
//                     "msearch": [{"index": "..."}, {"query": {...}}, ...]}'
//
// Prints one JSON object: {"client": "<package> <version>", "search": ANSWER, "msearch": ANSWER},
// where ANSWER is {"status", "headers", "body"} as the client returned them (the client parsed
// the body and accepted the response), or {"error": "<name>: <message>", "status"} when the
// client refused it or the request failed.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const PACKAGES = {
  elasticsearch8: "elasticsearch8", // npm:@elastic/elasticsearch@8
  elasticsearch9: "elasticsearch9", // npm:@elastic/elasticsearch@9
  opensearch: "@opensearch-project/opensearch",
};

const spec = JSON.parse(process.argv[2]);
const pkg = PACKAGES[spec.client];
if (!pkg) {
  console.error(`unknown client ${spec.client}; known: ${Object.keys(PACKAGES).join(", ")}`);
  process.exit(2);
}
const manifest = JSON.parse(
  readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url), "utf8"),
);
const { Client } = require(pkg);
const client = new Client({ node: spec.url, requestTimeout: 180000, maxRetries: 0 });
const elastic = spec.client !== "opensearch";

async function answer(call) {
  try {
    const response = await call();
    return { status: response.statusCode, headers: response.headers, body: response.body };
  } catch (error) {
    return {
      error: `${error.name}: ${error.message}`,
      status: error.meta?.statusCode ?? null,
      headers: error.meta?.headers ?? null,
    };
  }
}

const out = { client: `${manifest.name} ${manifest.version}` };
// The Elasticsearch clients take the body's keys as parameters (9.x has no `body`) and return
// the raw response ({body, statusCode, headers}) with `meta: true`; OpenSearch's always does.
out.search = await answer(() =>
  elastic
    ? client.search({ index: spec.index, ...spec.search }, { meta: true })
    : client.search({ index: spec.index, body: spec.search }),
);
out.msearch = await answer(() =>
  elastic
    ? client.msearch({ searches: spec.msearch }, { meta: true })
    : client.msearch({ body: spec.msearch }),
);
await client.close();
process.stdout.write(JSON.stringify(out));
