// Thin client for the crowdsight HTTP API. The browser authenticates with the session cookie
// set by POST /api/auth/login, so requests are same-origin with credentials.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The human message of an error response (FastAPI puts it in `detail`). */
async function errorMessage(res) {
  try {
    const body = await res.json();
    const d = body?.detail ?? body?.message ?? body?.error;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => `${(e.loc ?? []).slice(1).join(".")}: ${e.msg}`).join("; ");
  } catch { /* not JSON */ }
  return `${res.status} ${res.statusText}`;
}

/** Fetch JSON from the API; throws ApiError on a non-2xx answer. */
export async function api(path, { method = "GET", body, form } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (form !== undefined) {
    init.body = new URLSearchParams(form);
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") ?? "";
  return type.includes("json") ? res.json() : res.text();
}

/** A query string from an object, skipping empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

/** A list from a list answer, whether bare or wrapped ({items: [...]}, {events: [...]}). */
export function asList(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const k of [...keys, "items", "results", "data"]) {
    if (Array.isArray(data?.[k])) return data[k];
  }
  return [];
}

/** Sign in; tries a JSON body first and falls back to a form body (OAuth2 password style). */
export async function login(username, password) {
  // 503: another sign-in is being verified right now (the server checks one at a time).
  for (let tries = 1; ; tries += 1) {
    try {
      return await loginOnce(username, password);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 503) || tries >= 5) throw err;
      await new Promise((resolve) => setTimeout(resolve, 300 * tries));
    }
  }
}

async function loginOnce(username, password) {
  try {
    return await api("/api/auth/login", { method: "POST", body: { username, password } });
  } catch (err) {
    if (err instanceof ApiError && (err.status === 422 || err.status === 415)) {
      return api("/api/auth/login", { method: "POST", form: { username, password } });
    }
    throw err;
  }
}

/** Sign out (best effort: the session cookie is HTTP-only, so the server must clear it). */
export async function logout() {
  try {
    await api("/api/auth/logout", { method: "POST" });
  } catch { /* already signed out, or no such endpoint */ }
}

/** Who is signed in: {username, role} or null when the session is missing or expired. */
export async function whoami() {
  for (const path of ["/api/auth/me", "/api/me"]) {
    try {
      const me = await api(path);
      const user = me?.user ?? me;
      return { username: user?.username ?? "", role: user?.role ?? "" };
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return null;
      if (!(err instanceof ApiError && (err.status === 404 || err.status === 405))) throw err;
    }
  }
  // No "who am I" endpoint: probe an authenticated one.
  try {
    await api("/api/cameras");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
  return { username: "", role: "" };
}
