// The sandbox every JavaScript Action runs in (claimsengine/adapters/js_actions.py).
// Evaluated once per Action, before the Action's own code. It takes away what would make a
// run depend on the world (clock, randomness, timers, network, file system) and defines
// __claimsengine_run, which runs one execution and returns what the Action asked for.
(function () {
  "use strict";
  const G = globalThis;
  const RealDate = Date;
  const state = { nowMs: 0, seed: 1 };

  // Date: the decision's clock; local-time methods read UTC, as Auth0's runtime does.
  function FakeDate(...args) {
    if (new.target === undefined) return new RealDate(state.nowMs).toString();
    return Reflect.construct(RealDate, args.length ? args : [state.nowMs], new.target);
  }
  FakeDate.prototype = RealDate.prototype;
  FakeDate.now = () => state.nowMs;
  FakeDate.parse = RealDate.parse;
  FakeDate.UTC = RealDate.UTC;
  const proto = RealDate.prototype;
  for (const name of ["FullYear", "Month", "Date", "Day", "Hours", "Minutes", "Seconds", "Milliseconds"]) {
    proto["get" + name] = proto["getUTC" + name];
    if (name !== "Day") proto["set" + name] = proto["setUTC" + name];
  }
  proto.getTimezoneOffset = () => 0;
  G.Date = FakeDate;

  // Math.random: seeded per execution (mulberry32).
  Math.random = function () {
    let t = (state.seed = (state.seed + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  // Timers: no time passes in a decision, so a timer fires as soon as the Action awaits.
  let timerId = 0;
  const cancelled = new Set();
  G.setTimeout = (fn, _ms, ...args) => {
    const id = ++timerId;
    Promise.resolve().then(() => {
      if (!cancelled.has(id)) fn(...args);
    });
    return id;
  };
  G.clearTimeout = (id) => {
    cancelled.add(id);
  };
  G.setInterval = () => {
    throw new Error("setInterval is not available to Actions in claimsengine");
  };
  G.setImmediate = (fn, ...args) => G.setTimeout(fn, 0, ...args);
  if (G.Atomics) {
    delete G.Atomics.wait;
    delete G.Atomics.waitAsync;
  }

  // No network: fetch and friends refuse.
  const refuse = (what) => () => {
    throw new Error(`${what} is refused: Actions run without network or file system access in claimsengine`);
  };
  G.fetch = refuse("fetch (network access)");
  G.XMLHttpRequest = refuse("XMLHttpRequest (network access)");
  G.WebSocket = refuse("WebSocket (network access)");

  const logs = [];
  const log = (...args) => {
    if (logs.length < 100) logs.push(args.map(String).join(" ").slice(0, 256));
  };
  G.console = { log, info: log, warn: log, error: log, debug: log };
  G.global = G;
  G.self = G;
  G.process = { env: {}, version: "v22.0.0", versions: {}, platform: "linux", nextTick: (fn, ...a) => Promise.resolve().then(() => fn(...a)) };

  // CommonJS modules, resolved at load time by the adapter: files[path] is a factory,
  // links[path][specifier] the path a require() in that file resolves to.
  const files = {};
  const links = {};
  const cache = {};
  const REFUSED = "\u0000refused";
  function load(path) {
    if (cache[path]) return cache[path].exports;
    const module = { exports: {}, id: path, filename: path, loaded: false };
    cache[path] = module;
    const dir = path.slice(0, path.lastIndexOf("/"));
    files[path].call(module.exports, module.exports, (spec) => requireFrom(path, spec), module, path, dir);
    module.loaded = true;
    return module.exports;
  }
  function requireFrom(from, spec) {
    const target = (links[from] || {})[spec];
    if (target === REFUSED) {
      throw new Error(`require('${spec}') is refused: Actions run without network or file system access in claimsengine`);
    }
    if (target === undefined) {
      throw new Error(`require('${spec}') could not be resolved when the Action was loaded (only literal require() calls of declared dependencies are)`);
    }
    return load(target);
  }

  G.__claimsengine_define = (path, factory, fileLinks) => {
    files[path] = factory;
    links[path] = fileLinks;
  };

  const HANDLERS = { "post-login": "onExecutePostLogin", "credentials-exchange": "onExecuteCredentialsExchange" };
  const POST_LOGIN_UNSUPPORTED = {
    redirect: ["sendUserTo", "encodeToken", "validateToken"],
    multifactor: ["enable"],
    authentication: ["challengeWith", "challengeWithAny", "enrollWith", "enrollWithAny", "recordMethod", "setPrimaryUser"],
    session: ["revoke", "setExpiresAt", "setIdleExpiresAt", "setMetadata", "deleteMetadata", "evictMetadata"],
    refreshToken: ["revoke", "setExpiresAt", "setIdleExpiresAt", "setMetadata", "deleteMetadata"],
    prompt: ["render"],
    rules: ["wasExecuted"],
  };

  const utf8Length = (text) => unescape(encodeURIComponent(text)).length;

  function makeApi(trigger, ops, cacheState) {
    const api = {};
    const record = (op) => (...args) => {
      ops.push([op, ...args]);
      return api;
    };
    const unsupported = (name) => () => {
      throw new Error(`api.${name} is not supported by claimsengine: a fake tenant cannot ${name.startsWith("redirect") ? "send the user elsewhere" : "run this step"}`);
    };
    api.access = { deny: record("access.deny") };
    api.accessToken = { setCustomClaim: record("accessToken.setCustomClaim") };
    api.cache = {
      get: (key) => (Object.prototype.hasOwnProperty.call(cacheState, key) ? { value: cacheState[key] } : undefined),
      set: (key, value) => {
        key = String(key);
        value = String(value);
        if (utf8Length(key) > 64) return { type: "error", code: "KEY_TOO_LARGE" };
        if (utf8Length(value) > 4096) return { type: "error", code: "VALUE_TOO_LARGE" };
        const next = Object.assign({}, cacheState, { [key]: value });
        if (Object.keys(next).length > 20) return { type: "error", code: "TOO_MANY_ENTRIES" };
        const size = Object.entries(next).reduce((n, [k, v]) => n + utf8Length(k + v), 0);
        if (size > 8192) return { type: "error", code: "CACHE_FULL" };
        cacheState[key] = value;
        ops.push(["cache.set", key, value]);
        return { type: "success" };
      },
      delete: (key) => {
        key = String(key);
        delete cacheState[key];
        ops.push(["cache.delete", key]);
        return { type: "success" };
      },
    };
    if (trigger === "credentials-exchange") {
      api.transaction = {
        addTargetScope: record("transaction.addTargetScope"),
        removeTargetScope: record("transaction.removeTargetScope"),
        setTargetScopes: record("transaction.setTargetScopes"),
        clearTargetScopes: record("transaction.clearTargetScopes"),
      };
      return api;
    }
    api.accessToken.addScope = record("accessToken.addScope");
    api.accessToken.removeScope = record("accessToken.removeScope");
    api.idToken = { setCustomClaim: record("idToken.setCustomClaim") };
    // Persisting users is not a decision: metadata updates are accepted and not kept.
    api.user = { setAppMetadata: () => api, setUserMetadata: () => api };
    api.samlResponse = new Proxy({}, { get: () => () => api });
    for (const [group, names] of Object.entries(POST_LOGIN_UNSUPPORTED)) {
      api[group] = {};
      for (const name of names) api[group][name] = unsupported(`${group}.${name}`);
    }
    return api;
  }

  function describe(error) {
    if (error instanceof Error) return { name: error.name, message: String(error.message) };
    return { name: "Error", message: String(error) };
  }

  // One execution: run the handler, drain the microtask queue inside this same (timed) call,
  // and return the recorded operations as JSON.
  G.__claimsengine_run = (main, payload) => {
    state.nowMs = payload.now_ms;
    state.seed = payload.seed | 0;
    timerId = 0;
    cancelled.clear();
    logs.length = 0;
    const ops = [];
    const cacheState = Object.assign({}, payload.cache);
    const outcome = { done: false, error: null };
    try {
      const exported = load(main);
      const handler = exported && exported[HANDLERS[payload.trigger]];
      let result;
      if (typeof handler === "function") {
        result = handler(payload.event, makeApi(payload.trigger, ops, cacheState));
      } else if (typeof exported === "function") {
        // The pre-GA ("v1") shape the Deploy CLI's examples still use.
        result = Promise.resolve(exported(payload.event, {})).then((value) => {
          if (value !== undefined && value !== null && Object.keys(value).length > 0) {
            throw new Error("a pre-GA Action that returns side effects is not supported: call the api object from exports." + HANDLERS[payload.trigger]);
          }
        });
      } else {
        throw new Error(`the Action exports no ${HANDLERS[payload.trigger]} function`);
      }
      Promise.resolve(result).then(
        () => {
          outcome.done = true;
        },
        (error) => {
          outcome.done = true;
          outcome.error = describe(error);
        },
      );
    } catch (error) {
      outcome.done = true;
      outcome.error = describe(error);
    }
    %PerformMicrotaskCheckpoint();
    if (!outcome.done) outcome.error = { name: "Error", message: "the Action never finished: it awaits something that cannot happen in claimsengine (a timer, the network)" };
    return JSON.stringify({ ops, error: outcome.error, logs });
  };
})();
