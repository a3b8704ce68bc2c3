// The dashboard's service worker, for when it is opened from a phone's home screen and the hub
// cannot be reached. Pages always come from the network: they show live data and need a
// session, so none is ever served from a cache. Only when the network fails does a page load
// get the offline page (kept, with its stylesheet and icon, when the worker is installed).
const CACHE = 'iothub-offline-1';
const OFFLINE_PAGE = '/offline.html';
const KEPT = [OFFLINE_PAGE, '/pkg/iothub.css', '/favicon.svg'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(KEPT)));
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  if (event.request.mode === 'navigate') {
    event.respondWith(fetch(event.request).catch(() => caches.match(OFFLINE_PAGE)));
    return;
  }
  // What the offline page itself loads comes from the network too, and from the kept copy
  // when the network fails (the hub asks browsers to revalidate its stylesheet every time).
  const path = new URL(event.request.url).pathname;
  if (event.request.method === 'GET' && KEPT.includes(path)) {
    event.respondWith(fetch(event.request).catch(() => caches.match(path)));
  }
});
