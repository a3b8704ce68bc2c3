// Installs the service worker (sw.js) that shows the offline page when the hub cannot be
// reached. A file of its own, not inline: the pages' content security policy allows scripts
// from the hub itself only.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch(() => {});
}
