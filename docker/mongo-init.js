// Runs once when the MongoDB container starts with an empty data directory: the example
// collections get pre- and post-images so change streams can carry exact images.
// (The replica set itself is initiated by the compose healthcheck.)
const shop = db.getSiblingDB('shop');
for (const name of ['users', 'orders']) {
  shop.createCollection(name, { changeStreamPreAndPostImages: { enabled: true } });
}
