export {
  type AuthErrorCode,
  type AuthorizeOptions,
  type Authorizer,
  authorize,
  authorizerFromConfig,
} from "./authorize.js";
