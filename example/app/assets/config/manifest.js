// What to precompile under Sprockets 4 (Debian's Sprockets 3 precompiles application.css and
// application.js by name and ignores this file).
//= link application.css
//= link application.js
