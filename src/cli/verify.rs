//! `trustgate verify`: checks one SAMLResponse or wresult offline.
