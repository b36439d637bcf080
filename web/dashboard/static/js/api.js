// Reads the collector's JSON API (package web), relative to the page so
// that the dashboard works behind a proxy that serves it under a path.

// ApiError is an answer other than 200, with the server's reason.
export class ApiError extends Error {}

// getJSON fetches api/v1/<endpoint> with the parameters given (undefined
// ones left out) and returns the parsed answer.
export async function getJSON(endpoint, params = {}) {
  const url = new URL('api/v1/' + endpoint, document.baseURI);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined) {
      url.searchParams.set(k, v);
    }
  }
  const res = await fetch(url, { headers: { Accept: 'application/json' } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new ApiError(`${endpoint}: ${body.error || res.status + ' ' + res.statusText}`);
  }
  return body;
}
