'use strict';

const http = require('http');
const leftPad = require('left-pad');

const PORT = 8080;
const HOST = '0.0.0.0';

http
  .createServer((req, res) => {
    res.end(leftPad('Hello World', 20) + '\n');
  })
  .listen(PORT, HOST, () => console.log(`Running on http://${HOST}:${PORT}`));
