// js-libp2p 3 calls Promise.withResolvers (ES2024), which Node.js has from version 22 on.
// This node targets Node 20 too, so define it where it is missing. Imported first by main.js.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}
