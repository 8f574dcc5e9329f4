// The version 4 golden cases inside workerd (edge/test/golden.test.mjs runs
// it with miniflare): the package instantiated as the edge worker does it,
// `initSync({ module })`, and the results returned as JSON.
import { initSync, Recommender, Profile } from "../../pkg/nestrank.js";
import wasm from "../../pkg/nestrank_simd_bg.wasm";
import blob from "../data/golden-v4.nrk";
import profileV1 from "../data/golden-profile-v1.nrp";
import profileEmbedding from "../data/golden-profile-embedding.nrp";
import cases from "../data/golden-v4-cases.json";
import { runGolden } from "./run.js";

initSync({ module: wasm });

export default {
  fetch() {
    const results = runGolden({ Recommender, Profile }, new Uint8Array(blob), [profileV1, profileEmbedding].map((p) => new Uint8Array(p)), JSON.parse(cases));
    return Response.json(results);
  },
};
